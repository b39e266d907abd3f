//! The ledger of calls: the most recent ones in memory, and — when the gateway has a metadata
//! store — every one in the store, written by a thread of its own every 100 ms in batches, so a
//! call never waits for a disk nor wakes a thread.
//!
//! Nothing acknowledged to the writer is lost on a graceful stop: [`Ledger::close`] hands the
//! writer its last batch and waits for it. A store that fails a write is retried with the batch
//! kept (up to [`MAX_PENDING`] calls, beyond which the oldest are dropped and counted).

use std::collections::VecDeque;
use std::sync::mpsc::{
    Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError, TrySendError, channel, sync_channel,
};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use causeway_store::{LlmCall, MetaStore};
use prometheus_client::metrics::counter::Counter;

use crate::gateway::UsageRecord;
use crate::traces::Exporter;

/// How many recent calls the ledger keeps in memory.
pub const RECENT_CALLS: usize = 10_000;
/// How many calls may wait for the writer before new ones are dropped (and counted).
const QUEUE: usize = 65_536;
/// How many calls the writer keeps across failed writes.
const MAX_PENDING: usize = 100_000;
/// How many calls one write carries at most.
const BATCH: usize = 1_000;
/// How often the writer takes the queued calls to the store.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// The ledger.
pub struct Ledger {
    recent: Mutex<VecDeque<UsageRecord>>,
    writer: Mutex<Option<Writer>>,
    dropped: Counter,
}

struct Writer {
    sender: SyncSender<LlmCall>,
    /// Dropped to stop the writer (after its last turn).
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Default for Ledger {
    fn default() -> Self {
        Self { recent: Mutex::new(VecDeque::new()), writer: Mutex::new(None), dropped: Counter::default() }
    }
}

impl Ledger {
    /// A ledger that also writes every call to `meta` and sends its span to `exporter` (either
    /// may be absent), counting in `dropped` the calls the store never got.
    pub fn start(meta: Option<Arc<MetaStore>>, exporter: Option<Exporter>, dropped: Counter) -> std::io::Result<Self> {
        let (sender, receiver) = sync_channel(QUEUE);
        let (stop, stopped) = channel();
        let counted = dropped.clone();
        let thread = std::thread::Builder::new()
            .name("llm-ledger".into())
            .spawn(move || write_calls(meta.as_deref(), exporter.as_ref(), &receiver, &stopped, &counted))?;
        let writer = Writer { sender, stop, thread };
        Ok(Self { recent: Mutex::new(VecDeque::new()), writer: Mutex::new(Some(writer)), dropped })
    }

    /// Records one call.
    pub(crate) fn push(&self, record: UsageRecord) {
        if let Ok(writer) = self.writer.lock()
            && let Some(writer) = writer.as_ref()
            && let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = writer.sender.try_send(record.as_call())
        {
            self.dropped.inc();
        }
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == RECENT_CALLS {
                recent.pop_front();
            }
            recent.push_back(record);
        }
    }

    /// The most recent calls, oldest first.
    pub fn recent(&self) -> Vec<UsageRecord> {
        self.recent.lock().map(|recent| recent.iter().cloned().collect()).unwrap_or_default()
    }

    /// Stops the writer after it has written everything it was given; calls recorded later stay
    /// in memory only.
    pub fn close(&self) {
        let writer = self.writer.lock().ok().and_then(|mut writer| writer.take());
        if let Some(Writer { sender, stop, thread }) = writer {
            drop((sender, stop));
            let _ = thread.join();
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer's loop: every [`FLUSH_EVERY`] (and once more when the ledger closes) takes what is
/// queued and writes it in transactions of up to [`BATCH`] calls; a failed write keeps its calls
/// for the next turn. Waking on a clock rather than on each call keeps the writer off the
/// request path: a call costs the gateway one queue push, not a thread wake-up.
fn write_calls(
    meta: Option<&MetaStore>,
    exporter: Option<&Exporter>,
    receiver: &Receiver<LlmCall>,
    stop: &Receiver<()>,
    dropped: &Counter,
) {
    let mut pending: Vec<LlmCall> = Vec::new();
    loop {
        let open = matches!(stop.recv_timeout(FLUSH_EVERY), Err(RecvTimeoutError::Timeout));
        loop {
            while pending.len() < BATCH {
                match receiver.try_recv() {
                    Ok(call) => pending.push(call),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            if pending.is_empty() {
                break;
            }
            let more_queued = pending.len() == BATCH;
            match meta.map_or(Ok(()), |meta| meta.record_llm_calls(&pending)) {
                Ok(()) => {
                    if let Some(exporter) = exporter {
                        exporter.export(&pending);
                    }
                    pending.clear();
                }
                Err(error) => {
                    eprintln!("causeway: the LLM ledger could not write {} call(s), retrying: {error}", pending.len());
                    if !open {
                        let queued = receiver.try_iter().count();
                        dropped.inc_by((pending.len() + queued) as u64);
                        return;
                    }
                    if pending.len() > MAX_PENDING {
                        let excess = pending.len() - MAX_PENDING;
                        pending.drain(..excess);
                        dropped.inc_by(excess as u64);
                    }
                    break;
                }
            }
            if !more_queued {
                break;
            }
        }
        if !open {
            return;
        }
    }
}
