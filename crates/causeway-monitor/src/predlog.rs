//! The prediction log: serving hands records to a bounded queue and never waits; a writer thread
//! drains the queue into Parquet segments in the blob store. When the queue is full the record is
//! dropped and counted, so a slow disk can never slow a request down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow_array::builder::{Float64Builder, Int64Builder, ListBuilder, StringBuilder};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, ListArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use causeway_store::BlobStore;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where segments live in the blob store.
pub const PREFIX: &str = "predictions";

/// Whether the caller received this score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The score returned to the caller.
    Served,
    /// A score computed for evaluation only (shadow), never returned.
    Shadow,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::Served => "served",
            Self::Shadow => "shadow",
        }
    }
}

/// One logged prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionRecord {
    /// The request id (labels join on it).
    pub request_id: String,
    /// Event time (epoch ms, from the injected clock).
    pub timestamp_ms: i64,
    /// The registered model.
    pub model: String,
    /// The version that produced the score.
    pub version: u32,
    /// Served or shadow.
    pub role: Role,
    /// The score: the positive class's probability, the most likely class's probability, or
    /// the predicted number.
    pub score: f64,
    /// What was predicted, as a number: the class index (multi-class), the value (regression),
    /// or the score (binary). NaN in segments written before it existed.
    #[serde(default)]
    pub prediction: f64,
    /// Scoring latency in microseconds.
    pub latency_us: u64,
    /// The encoded features the model saw.
    pub features: Vec<f64>,
}

enum Message {
    Record(Box<PredictionRecord>),
    Flush(SyncSender<Result<()>>),
}

/// The writing end of the prediction log.
pub struct PredictionLog {
    sender: Option<SyncSender<Message>>,
    dropped: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    writer: Option<JoinHandle<()>>,
}

impl PredictionLog {
    /// Starts the writer thread. `capacity` bounds the queue; a segment is written every
    /// `segment_rows` records and on every flush.
    pub fn start(blobs: BlobStore, capacity: usize, segment_rows: usize) -> Self {
        Self::start_with_age(blobs, capacity, segment_rows, None)
    }

    /// [`PredictionLog::start`], also writing a segment when its oldest record has waited
    /// `max_age`, so a quiet model's predictions reach the store (and the loop) in time.
    pub fn start_with_age(blobs: BlobStore, capacity: usize, segment_rows: usize, max_age: Option<Duration>) -> Self {
        let (sender, receiver) = mpsc::sync_channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let counters = (written.clone(), dropped.clone());
        // Replicas share the store: a random part keeps their segment names apart.
        let writer_id = format!("{}{}", std::process::id(), causeway_store::random_hex(4).unwrap_or_default());
        let writer = std::thread::Builder::new()
            .name("prediction-log".into())
            .spawn(move || {
                let limits = Limits { segment_rows: segment_rows.max(1), max_age };
                write_loop(&blobs, &receiver, limits, &writer_id, &counters.0, &counters.1);
            })
            .ok();
        Self { sender: Some(sender), dropped, written, writer }
    }

    /// Queues a record without waiting; returns false (and counts a drop) when the queue is full.
    pub fn log(&self, record: PredictionRecord) -> bool {
        let Some(sender) = &self.sender else { return false };
        match sender.try_send(Message::Record(Box::new(record))) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Writes everything queued so far and waits until it is on disk. Blocking: call it off the
    /// request path.
    pub fn flush(&self) -> Result<()> {
        let sender = self.sender.as_ref().ok_or(Error::Stopped)?;
        let (done, wait) = mpsc::sync_channel(1);
        sender.send(Message::Flush(done)).map_err(|_| Error::Stopped)?;
        wait.recv().map_err(|_| Error::Stopped)?
    }

    /// Records dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records written to segments.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

impl Drop for PredictionLog {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            let (done, wait) = mpsc::sync_channel(1);
            if sender.send(Message::Flush(done)).is_ok() {
                let _ = wait.recv();
            }
        }
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// How many segments' worth of records the writer keeps while writes fail, before it drops.
const RETAINED_SEGMENTS: usize = 4;

/// When the writer closes a segment.
struct Limits {
    segment_rows: usize,
    max_age: Option<Duration>,
}

fn write_loop(
    blobs: &BlobStore,
    receiver: &Receiver<Message>,
    limits: Limits,
    writer_id: &str,
    written: &AtomicU64,
    dropped: &AtomicU64,
) {
    let segment_rows = limits.segment_rows;
    let mut buffer: Vec<PredictionRecord> = Vec::with_capacity(segment_rows);
    let mut sequence = 0u64;
    // When the oldest buffered record arrived.
    let mut oldest: Option<Instant> = None;
    loop {
        let deadline = limits.max_age.zip(oldest).map(|(age, oldest)| oldest + age);
        let message = match deadline {
            Some(deadline) => match receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(message) => Some(message),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match receiver.recv() {
                Ok(message) => Some(message),
                Err(_) => break,
            },
        };
        match message {
            Some(Message::Record(record)) => {
                buffer.push(*record);
                oldest.get_or_insert_with(Instant::now);
                if buffer.len() >= segment_rows {
                    // A failed background write is retried with the next segment; the buffer stays
                    // bounded by dropping (and counting) the oldest records.
                    if write_segment(blobs, &buffer, &mut sequence, writer_id).is_ok() {
                        written.fetch_add(buffer.len() as u64, Ordering::Relaxed);
                        buffer.clear();
                        oldest = None;
                    } else if buffer.len() >= RETAINED_SEGMENTS * segment_rows {
                        let excess = buffer.len() - (RETAINED_SEGMENTS - 1) * segment_rows;
                        buffer.drain(..excess);
                        dropped.fetch_add(excess as u64, Ordering::Relaxed);
                    }
                }
            }
            Some(Message::Flush(done)) => {
                let result = write_segment(blobs, &buffer, &mut sequence, writer_id);
                if result.is_ok() {
                    written.fetch_add(buffer.len() as u64, Ordering::Relaxed);
                    buffer.clear();
                    oldest = None;
                }
                let _ = done.send(result);
            }
            // The oldest record has waited long enough: close the segment (a failure retries at
            // the next deadline).
            None => {
                if write_segment(blobs, &buffer, &mut sequence, writer_id).is_ok() {
                    written.fetch_add(buffer.len() as u64, Ordering::Relaxed);
                    buffer.clear();
                    oldest = None;
                } else {
                    oldest = Some(Instant::now());
                }
            }
        }
    }
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("request_id", DataType::Utf8, false),
        Field::new("timestamp_ms", DataType::Int64, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("role", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
        Field::new("prediction", DataType::Float64, true),
        Field::new("latency_us", DataType::Int64, false),
        Field::new("features", DataType::List(Arc::new(Field::new("item", DataType::Float64, true))), false),
    ]))
}

fn write_segment(blobs: &BlobStore, records: &[PredictionRecord], sequence: &mut u64, writer_id: &str) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let first = records.iter().map(|record| record.timestamp_ms).min().unwrap_or(0);
    let last = records.iter().map(|record| record.timestamp_ms).max().unwrap_or(0);
    let key = format!("{PREFIX}/{first:013}-{last:013}-{:06}-{writer_id}.parquet", *sequence);
    let segment_error = |message: String| Error::Segment { segment: key.clone(), message };
    let mut request_ids = StringBuilder::new();
    let mut timestamps = Int64Builder::new();
    let mut models = StringBuilder::new();
    let mut versions = Int64Builder::new();
    let mut roles = StringBuilder::new();
    let mut scores = Float64Builder::new();
    let mut predictions = Float64Builder::new();
    let mut latencies = Int64Builder::new();
    let mut features = ListBuilder::new(Float64Builder::new());
    for record in records {
        request_ids.append_value(&record.request_id);
        timestamps.append_value(record.timestamp_ms);
        models.append_value(&record.model);
        versions.append_value(i64::from(record.version));
        roles.append_value(record.role.as_str());
        scores.append_value(record.score);
        predictions.append_value(record.prediction);
        latencies.append_value(record.latency_us as i64);
        for value in &record.features {
            features.values().append_value(*value);
        }
        features.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(request_ids.finish()),
        Arc::new(timestamps.finish()),
        Arc::new(models.finish()),
        Arc::new(versions.finish()),
        Arc::new(roles.finish()),
        Arc::new(scores.finish()),
        Arc::new(predictions.finish()),
        Arc::new(latencies.finish()),
        Arc::new(features.finish()),
    ];
    let batch = RecordBatch::try_new(schema(), columns).map_err(|error| segment_error(error.to_string()))?;
    let mut bytes = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut bytes, batch.schema(), None).map_err(|error| segment_error(error.to_string()))?;
    writer.write(&batch).map_err(|error| segment_error(error.to_string()))?;
    writer.close().map_err(|error| segment_error(error.to_string()))?;
    blobs.put(&key, &bytes)?;
    *sequence += 1;
    Ok(())
}

/// Reads every logged prediction with `from_ms <= timestamp < to_ms`, in time order.
pub fn read_window(blobs: &BlobStore, from_ms: i64, to_ms: i64) -> Result<Vec<PredictionRecord>> {
    let mut records = Vec::new();
    for key in blobs.list(PREFIX)? {
        let Some(name) = key.rsplit('/').next() else { continue };
        let mut parts = name.split('-');
        let (Some(first), Some(last)) = (
            parts.next().and_then(|part| part.parse::<i64>().ok()),
            parts.next().and_then(|part| part.parse::<i64>().ok()),
        ) else {
            continue;
        };
        if last < from_ms || first >= to_ms {
            continue;
        }
        read_segment(blobs, &key, &mut records, from_ms, to_ms)?;
    }
    records.sort_by(|left, right| {
        left.timestamp_ms.cmp(&right.timestamp_ms).then_with(|| left.request_id.cmp(&right.request_id))
    });
    Ok(records)
}

/// The keys of every segment in the log (replicas' and restarts' alike), in name order.
pub fn segment_keys(blobs: &BlobStore) -> Result<Vec<String>> {
    let mut keys = blobs.list(PREFIX)?;
    keys.sort();
    Ok(keys)
}

/// Every record of one segment, in the order written.
pub fn read_segment_records(blobs: &BlobStore, key: &str) -> Result<Vec<PredictionRecord>> {
    let mut records = Vec::new();
    read_segment(blobs, key, &mut records, i64::MIN, i64::MAX)?;
    Ok(records)
}

/// The request ids of every logged prediction of `model`, reading only the id and model columns.
pub fn logged_request_ids(blobs: &BlobStore, model: &str) -> Result<std::collections::HashSet<String>> {
    let mut ids = std::collections::HashSet::new();
    for key in blobs.list(PREFIX)? {
        let segment_error = |message: String| Error::Segment { segment: key.clone(), message };
        let bytes = bytes::Bytes::from(blobs.get(&key)?);
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|error| segment_error(error.to_string()))?;
        let wanted: Vec<usize> = builder
            .parquet_schema()
            .columns()
            .iter()
            .enumerate()
            .filter(|(_, column)| matches!(column.name(), "request_id" | "model"))
            .map(|(index, _)| index)
            .collect();
        let mask = parquet::arrow::ProjectionMask::leaves(builder.parquet_schema(), wanted);
        let reader = builder.with_projection(mask).build().map_err(|error| segment_error(error.to_string()))?;
        for batch in reader {
            let batch = batch.map_err(|error| segment_error(error.to_string()))?;
            let strings = |name: &str| {
                batch.column_by_name(name).and_then(|array| array.as_any().downcast_ref::<StringArray>().cloned())
            };
            let (Some(request_ids), Some(models)) = (strings("request_id"), strings("model")) else {
                return Err(segment_error("no request_id or model column".into()));
            };
            for row in 0..batch.num_rows() {
                if models.value(row) == model {
                    ids.insert(request_ids.value(row).to_string());
                }
            }
        }
    }
    Ok(ids)
}

fn read_segment(
    blobs: &BlobStore,
    key: &str,
    records: &mut Vec<PredictionRecord>,
    from_ms: i64,
    to_ms: i64,
) -> Result<()> {
    let segment_error = |message: String| Error::Segment { segment: key.to_string(), message };
    let bytes = bytes::Bytes::from(blobs.get(key)?);
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|builder| builder.build())
        .map_err(|error| segment_error(error.to_string()))?;
    for batch in reader {
        let batch = batch.map_err(|error| segment_error(error.to_string()))?;
        // Columns by name: segments from before a column was added still read.
        let column = |name: &str| batch.column_by_name(name).cloned();
        let strings = |name: &str| column(name).and_then(|array| array.as_any().downcast_ref::<StringArray>().cloned());
        let integers = |name: &str| column(name).and_then(|array| array.as_any().downcast_ref::<Int64Array>().cloned());
        let floats = |name: &str| column(name).and_then(|array| array.as_any().downcast_ref::<Float64Array>().cloned());
        let (
            Some(request_ids),
            Some(timestamps),
            Some(models),
            Some(versions),
            Some(roles),
            Some(scores),
            Some(latencies),
            Some(features),
        ) = (
            strings("request_id"),
            integers("timestamp_ms"),
            strings("model"),
            integers("version"),
            strings("role"),
            floats("score"),
            integers("latency_us"),
            column("features").and_then(|array| array.as_any().downcast_ref::<ListArray>().cloned()),
        )
        else {
            return Err(segment_error("unexpected column types".into()));
        };
        let predictions = floats("prediction");
        for row in 0..batch.num_rows() {
            let timestamp_ms = timestamps.value(row);
            if timestamp_ms < from_ms || timestamp_ms >= to_ms {
                continue;
            }
            let values = features.value(row);
            let values = values.as_any().downcast_ref::<Float64Array>().map(|array| {
                (0..array.len()).map(|index| if array.is_null(index) { f64::NAN } else { array.value(index) }).collect()
            });
            records.push(PredictionRecord {
                request_id: request_ids.value(row).to_string(),
                timestamp_ms,
                model: models.value(row).to_string(),
                version: u32::try_from(versions.value(row)).unwrap_or(0),
                role: if roles.value(row) == "shadow" { Role::Shadow } else { Role::Served },
                score: scores.value(row),
                prediction: match &predictions {
                    Some(predictions) if predictions.is_valid(row) => predictions.value(row),
                    _ => f64::NAN,
                },
                latency_us: u64::try_from(latencies.value(row)).unwrap_or(0),
                features: values.unwrap_or_default(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(index: i64) -> PredictionRecord {
        PredictionRecord {
            request_id: format!("r{index}"),
            timestamp_ms: index * 10,
            model: "fraud".into(),
            version: 1,
            role: if index % 2 == 0 { Role::Served } else { Role::Shadow },
            score: index as f64 / 100.0,
            prediction: index as f64 / 100.0,
            latency_us: 5,
            features: vec![index as f64, f64::NAN],
        }
    }

    #[test]
    fn logs_segments_and_reads_a_window_back() -> Result<()> {
        let directory = tempfile::tempdir().expect("tempdir");
        let blobs = BlobStore::open(directory.path())?;
        let log = PredictionLog::start(blobs.clone(), 1_000, 7);
        for index in 0..20 {
            assert!(log.log(record(index)));
        }
        log.flush()?;
        assert_eq!(log.written(), 20);
        assert!(blobs.list(PREFIX)?.len() >= 3);
        let window = read_window(&blobs, 50, 120)?;
        let ids: Vec<&str> = window.iter().map(|record| record.request_id.as_str()).collect();
        assert_eq!(ids, ["r5", "r6", "r7", "r8", "r9", "r10", "r11"]);
        assert_eq!(window[0].role, Role::Shadow);
        assert_eq!(window[0].features[0], 5.0);
        assert!(window[0].features[1].is_nan());
        Ok(())
    }

    #[test]
    fn a_quiet_log_closes_its_segment_by_age() -> Result<()> {
        let directory = tempfile::tempdir().expect("tempdir");
        let blobs = BlobStore::open(directory.path())?;
        let log = PredictionLog::start_with_age(blobs.clone(), 1_000, 10_000, Some(Duration::from_millis(20)));
        assert!(log.log(record(1)));
        assert!(log.log(record(2)));
        // Readiness check: the writer closes the segment on its own, far below 10,000 records.
        let deadline = Instant::now() + Duration::from_secs(20);
        while log.written() < 2 {
            assert!(Instant::now() < deadline, "the segment was never closed by age");
            std::thread::yield_now();
        }
        assert_eq!(read_window(&blobs, 0, 100)?.len(), 2);
        // Two writers on one store never overwrite each other's segments.
        let other = PredictionLog::start(blobs.clone(), 10, 10);
        assert!(other.log(record(1)) && other.log(record(2)));
        other.flush()?;
        assert_eq!(read_window(&blobs, 0, 100)?.len(), 4, "{:?}", blobs.list(PREFIX)?);
        let ids = logged_request_ids(&blobs, "fraud")?;
        assert_eq!(ids.len(), 2);
        assert!(ids.contains("r1") && logged_request_ids(&blobs, "other")?.is_empty());
        Ok(())
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() -> Result<()> {
        let directory = tempfile::tempdir().expect("tempdir");
        let blobs = BlobStore::open(directory.path())?;
        // A sender whose receiver never drains: every record past the capacity is dropped.
        let (sender, _receiver) = mpsc::sync_channel(2);
        let log = PredictionLog {
            sender: Some(sender),
            dropped: Arc::new(AtomicU64::new(0)),
            written: Arc::new(AtomicU64::new(0)),
            writer: None,
        };
        let accepted = (0..5).filter(|index| log.log(record(*index))).count();
        assert_eq!(accepted, 2);
        assert_eq!(log.dropped(), 3);
        std::mem::forget(log);
        drop(blobs);
        Ok(())
    }
}
