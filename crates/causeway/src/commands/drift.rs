//! `drift`: two files compared column by column, no project needed.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::table;

pub(crate) fn drift(
    reference: &Path,
    current: &Path,
    threshold: f64,
    columns: &[String],
    json: bool,
) -> Result<ExitCode> {
    if !(threshold.is_finite() && threshold > 0.0) {
        anyhow::bail!("--threshold must be a positive number, not {threshold}");
    }
    let options = causeway_data::ReadOptions {
        columns: columns.to_vec(),
        skip_missing_columns: true,
        ..causeway_data::ReadOptions::default()
    };
    let read = |path: &Path| causeway_data::read_file_with(path, &options);
    let (before, after) = (read(reference)?, read(current)?);
    for column in columns {
        if before.column(column).is_none() && after.column(column).is_none() {
            anyhow::bail!("neither file has a column `{column}`");
        }
    }
    let report = causeway_monitor::dataset_drift(&before, &after, threshold, columns);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let percent = |share: f64| format!("{:.1}%", share * 100.0);
        let mut output = table(&["column", "kind", "PSI", "KS", "nulls", "change", "verdict"]);
        for column in &report.columns {
            let change = match (&column.mean, &column.largest_shift) {
                (Some((before, after)), _) => format!("mean {before:.4} -> {after:.4}"),
                (None, Some((category, before, after))) => {
                    format!("{category}: {} -> {}", percent(*before), percent(*after))
                }
                (None, None) => String::new(),
            };
            output.add_row(vec![
                column.name.clone(),
                column.kind.to_string(),
                format!("{:.3}", column.psi),
                column.ks.map_or_else(String::new, |ks| format!("{ks:.3}")),
                format!("{} -> {}", percent(column.null_share.0), percent(column.null_share.1)),
                change,
                column.verdict.as_str().to_string(),
            ]);
        }
        println!("{output}");
        for change in &report.schema_changes {
            match (&change.reference, &change.current) {
                (Some(before), Some(after)) => println!("column `{}` changed type: {before} -> {after}", change.name),
                (Some(before), None) => {
                    println!("column `{}` ({before}) is missing from {}", change.name, current.display())
                }
                (None, Some(after)) => println!("column `{}` ({after}) is new in {}", change.name, current.display()),
                (None, None) => {}
            }
        }
        if !report.time_columns.is_empty() {
            println!("time columns, not compared (time moves on): {}", report.time_columns.join(", "));
        }
        let drifted = report.drifted().count();
        println!(
            "{drifted} of {} columns drifted (PSI >= {threshold}), {} schema change(s); {} rows -> {} rows",
            report.columns.len(),
            report.schema_changes.len(),
            report.reference_rows,
            report.current_rows
        );
    }
    Ok(if report.is_stable() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
