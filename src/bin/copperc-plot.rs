//! Draws the plots of docs/evaluation.md from the results that
//! `benches/eval.py` writes (`make eval` runs both).
//!
//! ```text
//! copperc-plot RESULTS.json OUT_DIR
//! ```
//!
//! Writes `OUT_DIR/expressiveness.svg`, `OUT_DIR/latency-p99.svg`,
//! `OUT_DIR/latency-p50.svg` and `OUT_DIR/cpu.svg`: grouped bars, one group
//! per application; the dataplane plots show the median over repetitions
//! with a whisker from the minimum to the maximum. Text is written as SVG
//! `<text>` elements (no font files are read).

use std::error::Error;
use std::path::Path;
use std::process::ExitCode;

use plotters::prelude::*;
use serde_json::Value;

/// One bar series: its name and, per group, (median, min, max).
struct Series {
    name: String,
    values: Vec<(f64, f64, f64)>,
}

const COLORS: [RGBColor; 4] = [
    RGBColor(120, 120, 120),
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(31, 119, 180),
];

fn grouped_bars(
    path: &Path,
    title: &str,
    y_desc: &str,
    groups: &[String],
    series: &[Series],
) -> Result<(), Box<dyn Error>> {
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().map(|v| v.2.max(v.0)))
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.25;
    let n = groups.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..top)?;
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
            groups[i as usize].clone()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&label)
        .y_desc(y_desc)
        .draw()?;
    let width = 0.8 / series.len().max(1) as f64;
    for (k, s) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let x0 = |g: usize| g as f64 - 0.4 + k as f64 * width;
        chart
            .draw_series(
                s.values
                    .iter()
                    .enumerate()
                    .map(|(g, v)| Rectangle::new([(x0(g) + 0.01, 0.0), (x0(g) + width - 0.01, v.0)], color.filled())),
            )?
            .label(s.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        chart.draw_series(s.values.iter().enumerate().filter(|(_, v)| v.2 > v.1).map(|(g, v)| {
            let mid = x0(g) + width / 2.0;
            PathElement::new(vec![(mid, v.1), (mid, v.2)], BLACK.stroke_width(1))
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()?;
    root.present()?;
    Ok(())
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// (median, min, max) of `key` over the runs of one placement.
fn summary(runs: &Value, key: &str) -> (f64, f64, f64) {
    let mut xs: Vec<f64> = runs
        .as_array()
        .map(|a| a.iter().map(|r| num(&r[key])).collect())
        .unwrap_or_default();
    xs.sort_by(f64::total_cmp);
    if xs.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let m = xs.len() / 2;
    let median = if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    };
    (median, xs[0], xs[xs.len() - 1])
}

fn run(results: &Path, out: &Path) -> Result<(), Box<dyn Error>> {
    let r: Value = serde_json::from_str(&std::fs::read_to_string(results)?)?;
    std::fs::create_dir_all(out)?;
    let empty = Vec::new();
    let expr = r["expressiveness"].as_array().unwrap_or(&empty);
    let groups: Vec<String> = expr
        .iter()
        .map(|e| e["app"].as_str().unwrap_or("?").to_string())
        .collect();
    let col = |k: &str| -> Vec<(f64, f64, f64)> {
        expr.iter()
            .map(|e| {
                let v = num(&e[k]);
                (v, v, v)
            })
            .collect()
    };
    grouped_bars(
        &out.join("expressiveness.svg"),
        "Lines for four policies per application",
        "non-empty lines",
        &groups,
        &[
            Series {
                name: "Copper".into(),
                values: col("copper_lines"),
            },
            Series {
                name: "Istio (policy objects)".into(),
                values: col("istio_lines"),
            },
            Series {
                name: "Istio (all emitted)".into(),
                values: col("istio_all_lines"),
            },
        ],
    )?;
    let dp = r["dataplane"].as_array().unwrap_or(&empty);
    if dp.is_empty() {
        return Ok(());
    }
    let groups: Vec<String> = dp
        .iter()
        .map(|e| e["app"].as_str().unwrap_or("?").to_string())
        .collect();
    let modes = [
        ("none", "no mesh"),
        ("istio", "istio"),
        ("istio++", "istio++"),
        ("wire", "wire (copperc)"),
    ];
    for (file, key, title, y) in [
        ("latency-p99.svg", "p99_ms", "p99 latency at fixed offered load", "ms"),
        ("latency-p50.svg", "p50_ms", "p50 latency at fixed offered load", "ms"),
        ("cpu.svg", "cpu_s", "CPU seconds of all services and sidecars", "CPU s"),
    ] {
        let series: Vec<Series> = modes
            .iter()
            .map(|(m, name)| Series {
                name: (*name).to_string(),
                values: dp.iter().map(|e| summary(&e["runs"][*m], key)).collect(),
            })
            .collect();
        grouped_bars(&out.join(file), title, y, &groups, &series)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, results, out] = args.as_slice() else {
        eprintln!("usage: copperc-plot RESULTS.json OUT_DIR");
        return ExitCode::from(2);
    };
    match run(Path::new(results), Path::new(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("copperc-plot: {e}");
            ExitCode::from(1)
        }
    }
}
