//! Notifiers: every alert and resolution goes to the configured webhook as a JSON POST (on a
//! thread of its own, with bounded retries and backoff, so a slow receiver never holds the loop
//! up) and, when asked, to the log.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use causeway_types::{Event, EventKind, format_timestamp};

use crate::rules::NotifySettings;

/// Alerts waiting for delivery before new ones are dropped (and logged).
const QUEUE: usize = 1_000;

/// Sends alert and resolution events where [`NotifySettings`] say.
pub struct Notifier {
    sender: Option<SyncSender<Event>>,
    log: bool,
}

/// The JSON a webhook receives for one event.
pub fn webhook_body(event: &Event) -> serde_json::Value {
    serde_json::json!({
        "kind": event.kind.as_str(),
        "model": event.subject,
        "rule": event.details.get("rule"),
        "message": event.message,
        "at": format_timestamp(event.at_ms),
        "at_ms": event.at_ms,
        "details": event.details,
    })
}

impl Notifier {
    /// A notifier for `settings`; the webhook thread starts only when a webhook is set.
    /// `backoff` is the wait before the first retry (doubling after each).
    pub fn start(settings: &NotifySettings, backoff: Duration) -> Self {
        let sender = settings.webhook.clone().and_then(|url| {
            let (sender, receiver) = sync_channel(QUEUE);
            let retries = settings.retries;
            std::thread::Builder::new()
                .name("alert-webhook".into())
                .spawn(move || deliver(&url, &receiver, retries, backoff))
                .ok()
                .map(|_| sender)
        });
        Self { sender, log: settings.log }
    }

    /// Sends `event` when it is an alert or a resolution; never blocks.
    pub fn notify(&self, event: &Event) {
        if !matches!(event.kind, EventKind::Alert | EventKind::Resolved) {
            return;
        }
        if self.log {
            tracing::warn!(model = %event.subject, kind = event.kind.as_str(), "{}", event.message);
            eprintln!(
                "{}  {:<8} {:<8} {}",
                format_timestamp(event.at_ms),
                event.kind.as_str(),
                event.subject,
                event.message
            );
        }
        if let Some(sender) = &self.sender
            && let Err(TrySendError::Full(_)) = sender.try_send(event.clone())
        {
            tracing::warn!(message = %event.message, "the alert webhook's queue is full: this alert is not sent");
        }
    }
}

fn deliver(url: &str, events: &Receiver<Event>, retries: u32, backoff: Duration) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    while let Ok(event) = events.recv() {
        let body = webhook_body(&event).to_string();
        let mut wait = backoff;
        for attempt in 0..=retries {
            let outcome = agent.post(url).header("content-type", "application/json").send(body.as_bytes());
            match outcome {
                Ok(response) if response.status().is_success() => break,
                failed => {
                    let why = match failed {
                        Ok(response) => format!("HTTP {}", response.status().as_u16()),
                        Err(error) => error.to_string(),
                    };
                    if attempt == retries {
                        tracing::warn!(%url, %why, attempts = attempt + 1, "an alert could not be delivered to the webhook");
                        break;
                    }
                    // Backoff between delivery attempts, on the webhook's own thread.
                    std::thread::sleep(wait);
                    wait = wait.saturating_mul(2);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use causeway_test_support::webhook_receiver;

    use super::*;

    fn alert(message: &str) -> Event {
        Event {
            id: 1,
            at_ms: 1_767_225_600_000,
            kind: EventKind::Alert,
            actor: "monitor".into(),
            subject: "fraud".into(),
            message: message.into(),
            details: serde_json::json!({"rule": "alert:slow", "value": 9.0}),
        }
    }

    #[test]
    fn the_webhook_gets_each_alert_and_a_failed_delivery_is_retried() {
        let (url, bodies) = webhook_receiver(1);
        let settings = NotifySettings { webhook: Some(url), retries: 2, log: false };
        let notifier = Notifier::start(&settings, Duration::from_millis(1));
        let mut loop_event = alert("not an alert");
        loop_event.kind = EventKind::Loop;
        notifier.notify(&loop_event);
        notifier.notify(&alert("alert: slow"));
        let (first_status, first) = bodies.recv().expect("a first attempt");
        let (second_status, second) = bodies.recv().expect("a retry");
        assert_eq!((first_status, second_status), (500, 200));
        assert_eq!(first, second, "the retry sends the same alert");
        let body: serde_json::Value = serde_json::from_str(&second).expect("JSON");
        assert_eq!(body["kind"], "alert");
        assert_eq!(body["model"], "fraud");
        assert_eq!(body["rule"], "alert:slow");
        assert_eq!(body["message"], "alert: slow");
        assert_eq!(body["at"], "2026-01-01T00:00:00Z");
        // The loop event was never sent: the next body is the next alert.
        notifier.notify(&alert("alert: again"));
        let (_, third) = bodies.recv().expect("the next alert");
        assert!(third.contains("alert: again"), "{third}");
    }
}
