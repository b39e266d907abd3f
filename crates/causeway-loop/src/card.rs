//! Model cards: one page per version saying what data it saw, how it was trained, how it
//! performs overall, by calibration and per slice (the largest gap called out), and where it came
//! from. Built once as sections, rendered as Markdown and as self-contained HTML.

use causeway_models::Task;
use causeway_types::{ModelVersionRecord, format_timestamp};

use crate::error::Result;
use crate::pipeline::{evaluation_key, load_artifact};
use crate::project::Project;

/// A rendered card.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCard {
    /// The card in Markdown.
    pub markdown: String,
    /// The same card as one self-contained HTML page.
    pub html: String,
    /// The card's blocks, for a page that draws them itself (the web UI).
    pub blocks: Vec<Block>,
}

/// One part of a card.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", content = "content", rename_all = "snake_case")]
pub enum Block {
    /// A section heading.
    Heading(String),
    /// A sentence or two.
    Paragraph(String),
    /// A table: its headers (empty strings for a key–value table) and rows.
    Table(Vec<String>, Vec<Vec<String>>),
}

/// The card of `model` version `version`.
pub fn model_card(project: &Project, model: &str, version: u32) -> Result<ModelCard> {
    let record = project.meta.model_version(model, version)?;
    let run = project.meta.run(&record.run_id).ok();
    let aliases: Vec<String> = project
        .meta
        .aliases(model)?
        .into_iter()
        .filter(|(_, aliased)| *aliased == version)
        .map(|(alias, _)| alias)
        .collect();
    let evaluation: Option<causeway_train::Evaluation> = project
        .blobs
        .get(&evaluation_key(&record.artifact_key))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let task = load_artifact(project, &record).ok().map(|artifact| artifact.task);
    let mut blocks = vec![
        Block::Heading(format!("Model card: {model} version {version}")),
        Block::Paragraph(summary(&record, &aliases, task.as_ref())),
        Block::Heading("Data".into()),
    ];
    let parameter = |key: &str| run.as_ref().and_then(|run| run.params.get(key).cloned()).unwrap_or_else(|| "—".into());
    blocks.push(Block::Table(
        vec!["".into(), "".into()],
        vec![
            vec!["dataset snapshot".into(), record.dataset.clone()],
            vec!["training rows".into(), parameter("train_rows")],
            vec!["holdout rows".into(), parameter("holdout_rows")],
        ],
    ));
    blocks.push(Block::Heading("Training".into()));
    let params: Vec<Vec<String>> = run
        .as_ref()
        .map(|run| run.params.iter().map(|(key, value)| vec![key.clone(), value.clone()]).collect())
        .unwrap_or_default();
    blocks.push(Block::Table(vec!["parameter".into(), "value".into()], params));
    blocks.push(Block::Heading("Holdout metrics".into()));
    let metrics = evaluation.as_ref().map_or_else(|| record.metrics.clone(), |evaluation| evaluation.metrics.clone());
    blocks.push(Block::Table(
        vec!["metric".into(), "value".into()],
        metrics.iter().map(|(name, value)| vec![name.clone(), format_number(*value)]).collect(),
    ));
    match &evaluation {
        Some(evaluation) => {
            if !evaluation.calibration.is_empty() {
                blocks.push(Block::Heading("Calibration".into()));
                blocks.push(Block::Paragraph(
                    "Holdout rows by score bin: a calibrated model's positive rate is close to its mean score.".into(),
                ));
            }
            blocks.push(Block::Table(
                vec!["scores".into(), "rows".into(), "mean score".into(), "positive rate".into()],
                evaluation
                    .calibration
                    .iter()
                    .map(|bin| {
                        vec![
                            format!("{:.1}–{:.1}", bin.lower, bin.upper),
                            bin.rows.to_string(),
                            format!("{:.4}", bin.mean_score),
                            format!("{:.4}", bin.positive_rate),
                        ]
                    })
                    .collect(),
            ));
            if evaluation.calibration.is_empty() {
                blocks.pop();
            }
            blocks.push(Block::Heading("Slices".into()));
            blocks.push(Block::Paragraph(match &evaluation.largest_gap {
                Some(gap) => format!(
                    "Largest gap: {} differs by {:.3} across `{}` — best `{}` ({:.3}), worst `{}` ({:.3}).",
                    gap.metric.replace('_', " "),
                    gap.gap,
                    gap.feature,
                    gap.best.0,
                    gap.best.1,
                    gap.worst.0,
                    gap.worst.1
                ),
                None => format!(
                    "No two slices of a categorical feature are large enough to compare (at least {} rows and {} positives).",
                    causeway_train::evaluation::MIN_SLICE_ROWS,
                    causeway_train::evaluation::MIN_SLICE_POSITIVES
                ),
            }));
            // The columns each task's slices carry beyond feature, value and rows.
            type Cells = fn(&causeway_train::evaluation::Slice) -> Vec<String>;
            let (extra, cells): (&[&str], Cells) = match &task {
                Some(Task::Multiclass { .. }) => (&["accuracy"], |slice| vec![cell(slice.accuracy, 3)]),
                Some(Task::Regression) => (&["RMSE"], |slice| vec![cell(slice.rmse, 4)]),
                _ => (&["positives", "recall", "false-positive rate", "precision"], |slice| {
                    vec![
                        slice.positives.to_string(),
                        cell(slice.recall, 3),
                        cell(slice.false_positive_rate, 4),
                        cell(slice.precision, 3),
                    ]
                }),
            };
            let headers: Vec<&str> = ["feature", "value", "rows"].into_iter().chain(extra.iter().copied()).collect();
            let rows: Vec<Vec<String>> = evaluation
                .slices
                .iter()
                .map(|slice| {
                    let mut row = vec![slice.feature.clone(), slice.value.clone(), slice.rows.to_string()];
                    row.extend(cells(slice));
                    row
                })
                .collect();
            blocks.push(Block::Table(headers.into_iter().map(String::from).collect(), rows));
        }
        None => blocks.push(Block::Paragraph(
            "No holdout evaluation is stored for this version (imported, or trained before evaluations were kept)."
                .into(),
        )),
    }
    blocks.push(Block::Heading("Lineage".into()));
    let mut lineage = vec![
        vec!["run".into(), record.run_id.clone()],
        vec!["artifact".into(), record.artifact_key.clone()],
        vec!["registered".into(), format_timestamp(record.created_ms)],
    ];
    if let Some(run) = &run {
        lineage.push(vec!["seed".into(), run.seed.to_string()]);
        lineage.push(vec!["git commit".into(), run.git_commit.clone().unwrap_or_else(|| "—".into())]);
        lineage.push(vec!["Causeway".into(), run.tool_version.clone()]);
    }
    if version > 1 {
        lineage.push(vec!["previous version".into(), (version - 1).to_string()]);
    }
    blocks.push(Block::Table(vec!["".into(), "".into()], lineage));
    Ok(ModelCard { markdown: markdown(&blocks), html: html(model, version, &blocks), blocks })
}

/// A metric cell: the value with `digits` decimals, or a dash.
fn cell(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "—".into(), |value| format!("{value:.digits$}"))
}

fn summary(record: &ModelVersionRecord, aliases: &[String], task: Option<&Task>) -> String {
    let aliases = if aliases.is_empty() { "no alias".to_string() } else { format!("aliases: {}", aliases.join(", ")) };
    let task = match task {
        Some(Task::Binary { classes }) => {
            format!(
                " predicting one of two classes ({} or {}; positive class `{}`)",
                classes[0], classes[1], classes[1]
            )
        }
        Some(Task::Multiclass { classes }) => {
            format!(" predicting one of {} classes ({})", classes.len(), classes.join(", "))
        }
        Some(Task::Regression) => " predicting a number".to_string(),
        None => String::new(),
    };
    format!("`{}` model{task}, registered {}; {aliases}.", record.flavor, format_timestamp(record.created_ms))
}

fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 { format!("{value:.0}") } else { format!("{value:.4}") }
}

fn markdown(blocks: &[Block]) -> String {
    let mut text = String::new();
    for (index, block) in blocks.iter().enumerate() {
        match block {
            Block::Heading(title) if index == 0 => text.push_str(&format!("# {title}\n\n")),
            Block::Heading(title) => text.push_str(&format!("## {title}\n\n")),
            Block::Paragraph(paragraph) => text.push_str(&format!("{paragraph}\n\n")),
            Block::Table(headers, rows) => {
                let escape = |cell: &String| cell.replace('|', "\\|");
                text.push_str(&format!("| {} |\n", headers.iter().map(escape).collect::<Vec<_>>().join(" | ")));
                text.push_str(&format!("|{}\n", "---|".repeat(headers.len())));
                for row in rows {
                    text.push_str(&format!("| {} |\n", row.iter().map(escape).collect::<Vec<_>>().join(" | ")));
                }
                text.push('\n');
            }
        }
    }
    text
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Inline code spans (`x`) become <code>.
fn inline(text: &str) -> String {
    escape_html(text)
        .split('`')
        .enumerate()
        .map(|(index, part)| if index % 2 == 1 { format!("<code>{part}</code>") } else { part.to_string() })
        .collect()
}

fn html(model: &str, version: u32, blocks: &[Block]) -> String {
    let mut body = String::new();
    for (index, block) in blocks.iter().enumerate() {
        match block {
            Block::Heading(title) if index == 0 => body.push_str(&format!("<h1>{}</h1>\n", escape_html(title))),
            Block::Heading(title) => body.push_str(&format!("<h2>{}</h2>\n", escape_html(title))),
            Block::Paragraph(paragraph) => body.push_str(&format!("<p>{}</p>\n", inline(paragraph))),
            Block::Table(headers, rows) => {
                body.push_str("<table>\n");
                if headers.iter().any(|header| !header.is_empty()) {
                    let cells: String =
                        headers.iter().map(|header| format!("<th>{}</th>", escape_html(header))).collect();
                    body.push_str(&format!("<tr>{cells}</tr>\n"));
                }
                for row in rows {
                    let cells: String = row.iter().map(|cell| format!("<td>{}</td>", escape_html(cell))).collect();
                    body.push_str(&format!("<tr>{cells}</tr>\n"));
                }
                body.push_str("</table>\n");
            }
        }
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} v{version}</title>\n<style>\
         body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}}\
         table{{border-collapse:collapse;margin:0.5rem 0 1.5rem}}td,th{{border:1px solid #ccc;padding:0.25rem 0.6rem;text-align:left}}\
         th{{background:#f3f3f3}}code{{background:#f3f3f3;padding:0 0.2rem}}</style></head>\n<body>\n{body}</body></html>\n",
        escape_html(model)
    )
}
