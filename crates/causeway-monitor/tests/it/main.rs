//! The monitor's statistics against the references users check them with.
#![allow(clippy::expect_used, reason = "tests fail loudly")]

use std::process::Command;

use causeway_data::{Column, Frame};
use causeway_monitor::dataset_drift::{DRIFTED_PSI, dataset_drift};
use causeway_monitor::drift::ks_two_sample;
use causeway_types::SeededRng;

/// Samples the issue quoted: a shifted lognormal, and two draws of one normal (with ties and
/// missing values mixed in, which scipy never sees).
fn samples() -> Vec<(&'static str, Vec<f64>, Vec<f64>)> {
    let mut rng = SeededRng::new(17);
    let lognormal = |rng: &mut SeededRng, shift: f64, count: usize| -> Vec<f64> {
        (0..count).map(|_| (rng.normal() * 0.5 + shift).exp()).collect()
    };
    let first = lognormal(&mut rng, 0.0, 5_000);
    let second = lognormal(&mut rng, 0.1, 4_000);
    let normal_a: Vec<f64> = (0..3_000).map(|_| rng.normal()).collect();
    let normal_b: Vec<f64> = (0..3_500).map(|_| rng.normal()).collect();
    let rounded_a: Vec<f64> = (0..2_000).map(|_| (rng.normal() * 3.0).round()).collect();
    let mut rounded_b: Vec<f64> = (0..1_500).map(|_| (rng.normal() * 3.0 + 0.4).round()).collect();
    rounded_b.extend([f64::NAN; 20]);
    vec![("shifted lognormal", first, second), ("one normal twice", normal_a, normal_b), ("ties", rounded_a, rounded_b)]
}

#[test]
fn kolmogorov_smirnov_is_exactly_scipys() {
    let python = causeway_test_support::python_with("tests/models/requirements.txt", ".venv-models");
    let directory = tempfile::tempdir().expect("tempdir");
    for (index, (name, first, second)) in samples().into_iter().enumerate() {
        let write = |file: &str, values: &[f64]| {
            let text: Vec<String> =
                values.iter().filter(|value| !value.is_nan()).map(|value| format!("{value:?}")).collect();
            std::fs::write(directory.path().join(file), text.join("\n")).expect("write sample");
        };
        write(&format!("{index}a.txt"), &first);
        write(&format!("{index}b.txt"), &second);
        let script = format!(
            "import numpy, scipy.stats\n\
             a = numpy.loadtxt('{dir}/{index}a.txt'); b = numpy.loadtxt('{dir}/{index}b.txt')\n\
             print(repr(float(scipy.stats.ks_2samp(a, b).statistic)))",
            dir = directory.path().display()
        );
        let output = Command::new(&python).args(["-c", &script]).output().expect("python runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let scipy: f64 = String::from_utf8_lossy(&output.stdout).trim().parse().expect("a number");
        let ours = ks_two_sample(&first, &second);
        assert!((ours - scipy).abs() < 1e-12, "{name}: ours {ours}, scipy {scipy}");

        // `causeway drift` reports the same statistic.
        let frame = |values: &[f64]| {
            Frame::new()
                .with_column(
                    "x",
                    Column::Float64(values.iter().map(|value| Some(*value).filter(|v| !v.is_nan())).collect()),
                )
                .expect("frame")
        };
        let report = dataset_drift(&frame(&first), &frame(&second), DRIFTED_PSI, &[]);
        let reported = report.columns[0].ks.expect("a KS statistic");
        assert!((reported - scipy).abs() < 1e-12, "{name}: drift reports {reported}, scipy {scipy}");
    }
}
