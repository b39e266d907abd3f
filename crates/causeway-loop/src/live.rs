//! The live scheduler: ticks every model's [`Controller`] on wall-clock time, with retraining
//! jobs on threads of their own, while this process holds the store's leader lease — several
//! control planes on one database never both act. `causeway server` runs it beside the API;
//! `causeway loop run` runs it alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;

use causeway_types::{Clock, Span};

use crate::controller::{Controller, Jobs, TickReport};
use crate::error::{Error, Result};
use crate::project::Project;
use crate::retrain::{Retrainer, live_retrainer};
use crate::windows::Summarizer;

/// The lease that elects the one control plane that runs the loop.
pub const LEASE: &str = "loop";

/// How the live loop runs.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// This process's id in the lease (see [`holder_id`]).
    pub holder: String,
    /// Time between ticks (`[loop] tick` unless overridden).
    pub tick: Span,
    /// How long the lease lasts without renewal: a control plane that dies is replaced after
    /// this. At least two ticks.
    pub lease: Span,
    /// Run one tick (as leader, if the lease is free) and stop.
    pub once: bool,
}

impl LiveOptions {
    /// Options for `project`: its `[loop] tick`, a lease of three ticks (at least 10 s).
    pub fn for_project(project: &Project, holder: String) -> Self {
        Self::with_tick(project.config.rollout.tick, holder)
    }

    /// Options ticking every `tick`, with a lease of three ticks (at least 10 s).
    pub fn with_tick(tick: Span, holder: String) -> Self {
        Self { holder, tick, lease: Span::from_millis((tick.millis() * 3).max(10_000)), once: false }
    }
}

/// A lease holder id: host name, process id and a random part.
pub fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let random = causeway_store::random_hex(4).unwrap_or_default();
    format!("{host}:{}:{random}", std::process::id())
}

/// What the live loop tells its observer.
#[derive(Debug)]
pub enum LiveEvent<'a> {
    /// This process became the leader (`true`) or stopped being it.
    Leadership(bool),
    /// A model was ticked.
    Ticked {
        /// The model.
        model: &'a str,
        /// What the tick saw and did.
        report: &'a TickReport,
    },
    /// A model could not be ticked (no champion yet, a store error, …); the loop carries on.
    Failed {
        /// The model.
        model: &'a str,
        /// Why.
        error: &'a Error,
    },
}

/// Receives what the live loop does.
pub type LiveObserver = Box<dyn FnMut(&LiveEvent<'_>) + Send>;

/// A running live loop; [`LiveLoop::stop`] ends it and gives the lease up.
pub struct LiveLoop {
    stop: Arc<AtomicBool>,
    wake: Sender<()>,
    handle: Option<JoinHandle<Result<()>>>,
}

impl LiveLoop {
    /// Starts the loop on a thread of its own with the live retrainer.
    pub fn start(
        project: Arc<Project>,
        options: LiveOptions,
        clock: Arc<dyn Clock>,
        observer: LiveObserver,
    ) -> Result<Self> {
        Self::start_with(project, options, clock, live_retrainer(), observer)
    }

    /// [`LiveLoop::start`] with another retrainer.
    pub fn start_with(
        project: Arc<Project>,
        options: LiveOptions,
        clock: Arc<dyn Clock>,
        retrainer: Retrainer,
        observer: LiveObserver,
    ) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, woken) = channel();
        let scheduler = Scheduler {
            summarizer: Summarizer::new(project.clone()),
            project,
            options,
            clock,
            retrainer,
            observer,
            stop: stop.clone(),
            wake: wake.clone(),
            woken,
            controllers: Vec::new(),
            leader: None,
        };
        let handle = std::thread::Builder::new()
            .name("causeway-loop".into())
            .spawn(move || scheduler.run())
            .map_err(|cause| Error::Io { path: "the loop's thread".into(), cause })?;
        Ok(Self { stop, wake, handle: Some(handle) })
    }

    /// Waits for a loop started with `once` to finish its tick.
    pub fn join(mut self) -> Result<()> {
        self.finish()
    }

    /// Stops after the tick in progress, gives the lease up and waits.
    pub fn stop(mut self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.send(());
        self.finish()
    }

    fn finish(&mut self) -> Result<()> {
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Error::Precondition("the loop's thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for LiveLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.send(());
        let _ = self.finish();
    }
}

struct Scheduler {
    project: Arc<Project>,
    options: LiveOptions,
    clock: Arc<dyn Clock>,
    retrainer: Retrainer,
    observer: LiveObserver,
    stop: Arc<AtomicBool>,
    wake: Sender<()>,
    woken: Receiver<()>,
    controllers: Vec<Controller>,
    /// Brings the window summaries of every model up to date, once per tick.
    summarizer: Summarizer,
    /// Whether this process led at the last tick (`None` before the first).
    leader: Option<bool>,
}

impl Scheduler {
    fn models(&self) -> Vec<String> {
        self.project.config.loop_models(None).unwrap_or_default()
    }

    fn run(mut self) -> Result<()> {
        while !self.stop.load(Ordering::SeqCst) {
            self.tick_all();
            if self.options.once {
                break;
            }
            match self.woken.recv_timeout(self.options.tick.to_std()) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        // A job still running is abandoned with the process; the state names it, and the next
        // leader runs it again (finding the version it may have registered).
        if self.leader == Some(true) {
            self.project.meta.release_lease(LEASE, &self.options.holder)?;
        }
        Ok(())
    }

    fn tick_all(&mut self) {
        let now = self.clock.now_ms();
        let leader =
            match self.project.meta.acquire_lease(LEASE, &self.options.holder, now, self.options.lease.millis()) {
                Ok(leader) => leader,
                Err(error) => {
                    tracing::warn!(%error, "cannot reach the store for the loop's lease");
                    false
                }
            };
        if self.leader != Some(leader) {
            self.leader = Some(leader);
            (self.observer)(&LiveEvent::Leadership(leader));
            if !leader {
                // Another control plane acts now; its controllers read the stored state.
                self.controllers.retain(Controller::job_running);
            }
        }
        if !leader {
            return;
        }
        if let Err(error) = self.summarizer.pass(now) {
            (self.observer)(&LiveEvent::Failed { model: "(window summaries)", error: &error });
        }
        for (index, model) in self.models().into_iter().enumerate() {
            // A long tick (a slow store, many models) renews the lease before each model, and
            // stops acting the moment another control plane holds it.
            if index > 0 {
                let renewed_at = self.clock.now_ms();
                let still = self
                    .project
                    .meta
                    .acquire_lease(LEASE, &self.options.holder, renewed_at, self.options.lease.millis())
                    .unwrap_or(false);
                if !still {
                    self.leader = Some(false);
                    (self.observer)(&LiveEvent::Leadership(false));
                    return;
                }
            }
            if !self.controllers.iter().any(|controller| controller.model() == model) {
                let jobs =
                    if self.options.once { Jobs::Inline } else { Jobs::Background { wake: Some(self.wake.clone()) } };
                let scoped = match self.project.scoped(&model) {
                    Ok(scoped) => Arc::new(scoped),
                    Err(error) => {
                        (self.observer)(&LiveEvent::Failed { model: &model, error: &error.into() });
                        continue;
                    }
                };
                match Controller::for_model(scoped, &model, self.retrainer.clone(), jobs) {
                    Ok(controller) => self.controllers.push(controller.summarized_by_caller()),
                    Err(error) => {
                        (self.observer)(&LiveEvent::Failed { model: &model, error: &error });
                        continue;
                    }
                }
            }
            let Some(controller) = self.controllers.iter_mut().find(|controller| controller.model() == model) else {
                continue;
            };
            match controller.tick(now) {
                Ok(report) => (self.observer)(&LiveEvent::Ticked { model: &model, report: &report }),
                Err(error) => (self.observer)(&LiveEvent::Failed { model: &model, error: &error }),
            }
        }
    }
}
