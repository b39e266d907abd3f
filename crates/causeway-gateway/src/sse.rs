//! Server-sent events read incrementally, as an upstream's stream arrives in arbitrary pieces.
//!
//! The gateway forwards a stream's bytes as they come; it reads the events only to learn what it
//! must (usage, finish reasons, and the text when output guardrails are on). [`SseScanner`] owns
//! that reading: it is fed chunks split anywhere — inside a line, inside a UTF-8 character,
//! between `\r` and `\n` — and yields each complete event once, following the WHATWG
//! event-stream rules (fields `event` and `data`, several `data` lines joined by `\n`, comments
//! and unknown fields ignored, an event ended by a blank line). It must not hold more than one
//! unfinished event: a line longer than the limit is an error, not a growing buffer.

/// One event of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field (`None` means the default, `message`).
    pub event: Option<String>,
    /// The `data:` lines, joined by `\n`.
    pub data: String,
}

/// Why a stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line grew past the limit without ending.
    #[error("an event-stream line is longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// A line is not UTF-8.
    #[error("an event-stream line is not UTF-8")]
    NotUtf8,
}

/// Reads events out of a stream fed in pieces.
#[derive(Debug)]
pub struct SseScanner {
    line: Vec<u8>,
    /// A `\r` ended the last piece: a `\n` first in the next one belongs to it.
    after_carriage_return: bool,
    event: Option<String>,
    data: Option<String>,
    max_line: usize,
}

impl Default for SseScanner {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_LINE)
    }
}

impl SseScanner {
    /// The longest line read by default (an upstream's chunk with a long tool-call argument fits).
    pub const DEFAULT_MAX_LINE: usize = 4 * 1024 * 1024;

    /// A scanner refusing lines over `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Self { line: Vec::new(), after_carriage_return: false, event: None, data: None, max_line }
    }

    /// Reads `piece` and returns the events it completed, in order.
    pub fn feed(&mut self, piece: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut events = Vec::new();
        let mut rest = piece;
        if self.after_carriage_return && !rest.is_empty() {
            self.after_carriage_return = false;
            if let Some(stripped) = rest.strip_prefix(b"\n") {
                rest = stripped;
            }
        }
        while let Some(end) = rest.iter().position(|byte| *byte == b'\n' || *byte == b'\r') {
            self.extend_line(&rest[..end])?;
            let line = std::mem::take(&mut self.line);
            if let Some(event) = self.take_line(&line)? {
                events.push(event);
            }
            if rest[end] == b'\r' {
                match rest.get(end + 1) {
                    Some(b'\n') => rest = &rest[end + 2..],
                    Some(_) => rest = &rest[end + 1..],
                    None => {
                        self.after_carriage_return = true;
                        rest = &[];
                    }
                }
            } else {
                rest = &rest[end + 1..];
            }
        }
        self.extend_line(rest)?;
        Ok(events)
    }

    /// Ends the stream. An event whose blank line never came is discarded, as the standard says
    /// (an upstream cut off mid-event sent no complete event); the scanner is ready for another.
    pub fn finish(&mut self) {
        self.line.clear();
        self.after_carriage_return = false;
        self.event = None;
        self.data = None;
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.line.len() + bytes.len() > self.max_line {
            return Err(SseError::LineTooLong { limit: self.max_line });
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// Applies one complete line; a blank line dispatches the event being read.
    fn take_line(&mut self, line: &[u8]) -> Result<Option<SseEvent>, SseError> {
        if line.is_empty() {
            let event = self.event.take();
            return Ok(self.data.take().map(|data| SseEvent { event, data }));
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "event" => self.event = Some(value.to_string()),
            // `id` and `retry` steer a browser's reconnection; the gateway does not reconnect.
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str =
        "data: {\"a\":1}\n\n: keep-alive\n\nevent: error\ndata: first\ndata: second\n\ndata: [DONE]\n\n";

    fn whole(stream: &[u8]) -> Vec<SseEvent> {
        let mut scanner = SseScanner::default();
        let events = scanner.feed(stream).expect("reads");
        scanner.finish();
        events
    }

    #[test]
    fn reads_data_events_names_and_multiline_data() {
        let events = whole(STREAM.as_bytes());
        assert_eq!(
            events,
            [
                SseEvent { event: None, data: "{\"a\":1}".into() },
                SseEvent { event: Some("error".into()), data: "first\nsecond".into() },
                SseEvent { event: None, data: "[DONE]".into() },
            ]
        );
    }

    #[test]
    fn any_split_and_any_line_ending_gives_the_same_events() {
        let expected = whole(STREAM.as_bytes());
        for ending in ["\n", "\r\n", "\r"] {
            let stream = STREAM.replace('\n', ending);
            let bytes = stream.as_bytes();
            assert_eq!(whole(bytes), expected, "whole, {ending:?}");
            for cut in 0..=bytes.len() {
                for second in cut..=bytes.len() {
                    let mut scanner = SseScanner::default();
                    let mut events = scanner.feed(&bytes[..cut]).expect("reads");
                    events.extend(scanner.feed(&bytes[cut..second]).expect("reads"));
                    events.extend(scanner.feed(&bytes[second..]).expect("reads"));
                    scanner.finish();
                    assert_eq!(events, expected, "cut at {cut} and {second} with {ending:?}");
                }
            }
        }
    }

    #[test]
    fn a_character_split_across_pieces_is_whole_again() {
        let bytes = "data: é\n\n".as_bytes();
        let split = bytes.iter().position(|byte| *byte == 0xc3).expect("é") + 1;
        let mut scanner = SseScanner::default();
        assert!(scanner.feed(&bytes[..split]).expect("reads").is_empty());
        assert_eq!(scanner.feed(&bytes[split..]).expect("reads")[0].data, "é");
    }

    #[test]
    fn an_unfinished_event_at_the_end_is_dropped_and_long_lines_are_refused() {
        assert!(whole(b"data: cut off").is_empty());
        assert!(whole(b"data: cut off\n").is_empty(), "no blank line, no event");
        let mut scanner = SseScanner::new(8);
        assert_eq!(scanner.feed(b"data: 123"), Err(SseError::LineTooLong { limit: 8 }));
        let mut scanner = SseScanner::default();
        assert_eq!(scanner.feed(b"data: \xff\n"), Err(SseError::NotUtf8));
    }
}
