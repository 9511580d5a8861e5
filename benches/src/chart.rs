//! The chart: median `run` time (bar) and 95th percentile (whisker) of every
//! runtime and workload, as SVG.

use plotters::prelude::*;

use crate::report::Results;
use crate::runtime::Bench;
use crate::stats::summarize;
use crate::workload::Workload;

const COLORS: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
];

/// One bar per (workload, runtime) that has `run` times, grouped by workload.
pub fn lifecycle_svg(results: &Results, bench: &Bench) -> String {
    let mut bars: Vec<(String, usize, f64, f64)> = Vec::new();
    for workload in Workload::ALL {
        for (color, runtime) in bench.runtimes.iter().enumerate() {
            let Some(series) = results.get("lifecycle", workload.name(), "run", &runtime.name) else { continue };
            let Some(summary) = summarize(&series.values) else { continue };
            bars.push((format!("{} · {}", workload.label(), runtime.name), color, summary.median, summary.p95));
        }
    }
    let mut svg = String::new();
    if bars.is_empty() {
        return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"/>\n".into();
    }
    let height = 80 + 22 * bars.len() as u32;
    let max = bars.iter().map(|b| b.3).fold(0.0, f64::max) * 1.08;
    {
        let root = SVGBackend::with_string(&mut svg, (900, height)).into_drawing_area();
        let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let n = bars.len();
            let mut chart = ChartBuilder::on(&root)
                .caption("lifecycle: median `run` time (bar), p95 (whisker), ms", ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(300)
                .build_cartesian_2d(0.0..max, -0.5..(n as f64 - 0.5))?;
            let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(n)
                .y_label_formatter(&|y| {
                    let i = y.round();
                    if (y - i).abs() < 1e-6 && i >= 0.0 {
                        labels.get(n - 1 - i as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .x_desc("ms")
                .label_style(("sans-serif", 12))
                .draw()?;
            for (i, (_, color, median, p95)) in bars.iter().enumerate() {
                let y = (n - 1 - i) as f64;
                let color = COLORS[color % COLORS.len()];
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(0.0, y - 0.35), (*median, y + 0.35)],
                    color.filled(),
                )))?;
                chart.draw_series(std::iter::once(PathElement::new(vec![(*median, y), (*p95, y)], BLACK)))?;
                chart.draw_series(std::iter::once(PathElement::new(vec![(*p95, y - 0.2), (*p95, y + 0.2)], BLACK)))?;
                chart.draw_series(std::iter::once(Text::new(
                    format!("{median:.1}"),
                    (*p95 + max * 0.01, y + 0.25),
                    ("sans-serif", 11),
                )))?;
            }
            root.present()?;
            Ok(())
        })();
        if let Err(e) = drawn {
            return format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\"><text y=\"20\">chart failed: {e}</text></svg>\n"
            );
        }
    }
    svg
}
