//! Prompt-named requests: a chat request may carry `prompt` — `name@alias`, `name/3` or MLflow's
//! `prompts:/name@alias` — and `variables` instead of (or before) its `messages`. The prompt is
//! read from the MLflow prompt registry in the metadata store (a registered model tagged
//! `mlflow.prompt.is_prompt`, its versions' template in `mlflow.prompt.text`, chat prompts as a
//! JSON list of messages) and rendered as `mlflow.genai`'s `format` does (`{{ name }}`).
//!
//! Reading and rendering only; the gateway decides when (before guardrails, so rendered text is
//! checked) and records the version used.

use causeway_store::MetaStore;
use serde_json::{Map, Value, json};

/// The tag that marks a registered model as a prompt.
const IS_PROMPT_TAG: &str = "mlflow.prompt.is_prompt";
/// The version tag holding the template.
const TEXT_TAG: &str = "mlflow.prompt.text";
/// The version tag saying `text` or `chat`.
const TYPE_TAG: &str = "_mlflow_prompt_type";

/// Which version of which prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptReference {
    /// The prompt's name.
    pub name: String,
    /// Its version, or an alias (`latest` included).
    pub selector: Selector,
}

/// A version number or an alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `name/3`.
    Version(u32),
    /// `name@production`.
    Alias(String),
}

impl PromptReference {
    /// Reads `name@alias`, `name/3`, or either after `prompts:/`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bare = text.trim().strip_prefix("prompts:/").unwrap_or(text.trim());
        let refuse = || {
            format!(
                "`prompt` is `{text}`: name a prompt and its version or alias, as `summarize@production` or `summarize/2`"
            )
        };
        let valid_name = |name: &str| {
            !name.is_empty() && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"_.-".contains(&byte))
        };
        if let Some((name, alias)) = bare.split_once('@') {
            if valid_name(name) && !alias.is_empty() {
                return Ok(Self { name: name.to_string(), selector: Selector::Alias(alias.to_string()) });
            }
        } else if let Some((name, version)) = bare.split_once('/')
            && valid_name(name)
            && let Ok(version) = version.parse::<u32>()
        {
            return Ok(Self { name: name.to_string(), selector: Selector::Version(version) });
        }
        Err(refuse())
    }
}

/// A prompt version's template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template {
    /// One text, sent as the user's message.
    Text(String),
    /// Messages (role, content).
    Chat(Vec<(String, String)>),
}

/// A prompt version, read from the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// What it says.
    pub template: Template,
}

impl Prompt {
    /// `name/version`, as the ledger and traces show it.
    pub fn label(&self) -> String {
        format!("{}/{}", self.name, self.version)
    }

    /// Reads the version `reference` names. Blocking: call it off the async workers.
    pub fn load(meta: &MetaStore, reference: &PromptReference) -> Result<Self, String> {
        let name = &reference.name;
        let model = meta.registered_model(name).map_err(|_| format!("no prompt is named `{name}`"))?;
        if model.tags.get(IS_PROMPT_TAG).map(String::as_str) != Some("true") {
            return Err(format!("`{name}` is a registered model, not a prompt"));
        }
        let version = match &reference.selector {
            Selector::Version(version) => *version,
            Selector::Alias(alias) => meta
                .version_by_alias(name, alias)
                .map_err(|error| error.to_string())?
                .ok_or_else(|| format!("prompt `{name}` has no alias `{alias}`"))?,
        };
        let stored =
            meta.registry_version(name, version).map_err(|_| format!("prompt `{name}` has no version {version}"))?;
        let text =
            stored.tags.get(TEXT_TAG).ok_or_else(|| format!("prompt `{name}` version {version} has no template"))?;
        let template = if stored.tags.get(TYPE_TAG).map(String::as_str) == Some("chat") {
            let messages: Vec<Value> = serde_json::from_str(text).map_err(|error| {
                format!("prompt `{name}` version {version}: its chat template is not JSON: {error}")
            })?;
            let pairs = messages
                .iter()
                .map(|message| {
                    let role = message["role"].as_str().unwrap_or("user").to_string();
                    let content = message["content"].as_str().unwrap_or_default().to_string();
                    (role, content)
                })
                .collect();
            Template::Chat(pairs)
        } else {
            Template::Text(text.clone())
        };
        Ok(Self { name: name.clone(), version, template })
    }

    /// The messages this prompt gives with `variables` filled in; a variable the template uses
    /// and `variables` lacks is an error naming it.
    pub fn render(&self, variables: &Map<String, Value>) -> Result<Vec<Value>, String> {
        let fill = |text: &str| {
            fill(text, variables).map_err(|missing| {
                format!(
                    "prompt `{}` version {} uses `{{{{{missing}}}}}`: give it in `variables`",
                    self.name, self.version
                )
            })
        };
        match &self.template {
            Template::Text(text) => Ok(vec![json!({"role": "user", "content": fill(text)?})]),
            Template::Chat(messages) => {
                messages.iter().map(|(role, content)| Ok(json!({"role": role, "content": fill(content)?}))).collect()
            }
        }
    }
}

/// `text` with each `{{ name }}` replaced by its variable (strings as they are, other values as
/// JSON), or the first missing name.
fn fill(text: &str, variables: &Map<String, Value>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else { break };
        let name = rest[open + 2..open + 2 + close].trim();
        let is_name = !name.is_empty()
            && name.split('.').all(|part| {
                part.chars().next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
                    && part.chars().all(|character| character.is_ascii_alphanumeric() || character == '_')
            });
        out.push_str(&rest[..open]);
        if is_name {
            match variables.get(name) {
                Some(Value::String(value)) => out.push_str(value),
                Some(value) => out.push_str(&value.to_string()),
                None => return Err(name.to_string()),
            }
        } else {
            out.push_str(&rest[open..open + 2 + close + 2]);
        }
        rest = &rest[open + 2 + close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_read_as_mlflow_writes_them() {
        let alias =
            |name: &str, alias: &str| PromptReference { name: name.into(), selector: Selector::Alias(alias.into()) };
        assert_eq!(PromptReference::parse("summarize@production"), Ok(alias("summarize", "production")));
        assert_eq!(PromptReference::parse("prompts:/summarize@latest"), Ok(alias("summarize", "latest")));
        assert_eq!(
            PromptReference::parse("support.chat-v2/3"),
            Ok(PromptReference { name: "support.chat-v2".into(), selector: Selector::Version(3) })
        );
        for wrong in ["summarize", "@prod", "a b@prod", "summarize/x", ""] {
            assert!(PromptReference::parse(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn templates_fill_their_variables_and_name_a_missing_one() {
        let prompt = Prompt {
            name: "support".into(),
            version: 2,
            template: Template::Chat(vec![
                ("system".into(), "You help with {{ product }}.".into()),
                ("user".into(), "{{question}} ({{ meta.count }} tries, {literal})".into()),
            ]),
        };
        let variables: Map<String, Value> =
            serde_json::from_value(json!({"product": "Causeway", "question": "How?", "meta.count": 3})).expect("map");
        assert_eq!(
            prompt.render(&variables),
            Ok(vec![
                json!({"role": "system", "content": "You help with Causeway."}),
                json!({"role": "user", "content": "How? (3 tries, {literal})"}),
            ])
        );
        let missing = prompt.render(&Map::new()).expect_err("no variables");
        assert_eq!(missing, "prompt `support` version 2 uses `{{product}}`: give it in `variables`");
        let text = Prompt { name: "s".into(), version: 1, template: Template::Text("Summarize: {{text}}".into()) };
        let variables: Map<String, Value> = serde_json::from_value(json!({"text": "hi"})).expect("map");
        assert_eq!(text.render(&variables), Ok(vec![json!({"role": "user", "content": "Summarize: hi"})]));
    }
}
