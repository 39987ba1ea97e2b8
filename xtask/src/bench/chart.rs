//! benchmarks.svg: getOrder requests/s (median bar, min–max whisker) and
//! p99 latency (at 1×1 and at 50×10, log scale) per server, from the same
//! summary rows as the table.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentedCoord;
use plotters::coord::types::RangedCoordusize;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::config::Kind;
use super::loadgen::LOAD_GENERATOR;
use super::numbers::thousands;
use super::summary::{Row, Summary};

const FONT: &str = "sans-serif";
const OURS: RGBColor = RGBColor(0x1f, 0x6f, 0xb4);
const PEER: RGBColor = RGBColor(0x9a, 0xa5, 0xb1);
const SINGLE: RGBColor = RGBColor(0x2c, 0xa0, 0x5a);
const LOADED: RGBColor = RGBColor(0xd6, 0x6a, 0x27);

/// Short enough to fit under a bar.
fn short(kind: Kind) -> &'static str {
    match kind {
        Kind::Ours => "ours",
        Kind::Bare => "bare tonic MT",
        Kind::BareCurrentThread => "bare tonic CT",
        Kind::Python => "Python grpcio",
        Kind::Node => "Node grpc-js",
    }
}

pub fn draw(path: &Path, summary: &Summary) -> Result<()> {
    let rows: Vec<&Row> = summary.rows.iter().filter(|r| r.rps.is_some()).collect();
    let root = SVGBackend::new(path, (1200, 500)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let r = summary.results;
    let title = format!(
        "getOrder(\"101\") on loopback, server on core 0, load on core 1: {} round(s) x {} s, {}",
        r.rounds_asked, r.seconds, r.date
    );
    let body = root.titled(&title, (FONT, 18)).map_err(|e| fail(&e))?;
    if rows.is_empty() {
        body.draw(&Text::new(
            "no verified run to plot",
            (40, 40),
            (FONT, 16).into_font(),
        ))
        .map_err(|e| fail(&e))?;
    } else {
        let (left, right) = body.split_horizontally(600);
        throughput(&left, &rows).map_err(|e| fail(&e))?;
        latency(&right, &rows).map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))
}

type Drawn<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn label_of(rows: &[&Row]) -> impl Fn(&SegmentValue<usize>) -> String {
    let names: Vec<&'static str> = rows.iter().map(|r| short(r.kind)).collect();
    move |v| match v {
        SegmentValue::CenterOf(i) => names.get(*i).copied().unwrap_or("").to_owned(),
        _ => String::new(),
    }
}

/// One segment per server (plotters' integer ranges include their end).
fn categories(n: usize) -> SegmentedCoord<RangedCoordusize> {
    (0..n.saturating_sub(1)).into_segmented()
}

fn centered() -> Pos {
    Pos::new(HPos::Center, VPos::Bottom)
}

fn throughput<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, rows: &[&Row]) -> Drawn<DB> {
    let n = rows.len();
    let spreads: Vec<_> = rows.iter().map(|r| r.rps.expect("filtered")).collect();
    let top = spreads.iter().map(|s| s.max).fold(1.0, f64::max) * 1.18;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "requests/s (h2load -c 50 -m 10): median, whisker min–max",
            (FONT, 15),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(72)
        .build_cartesian_2d(categories(n), 0f64..top)?;
    let label = label_of(rows);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
        .x_labels(n)
        .x_label_formatter(&label)
        .y_label_formatter(&|v| thousands(*v))
        .y_desc("requests/s")
        .draw()?;
    chart.draw_series(rows.iter().zip(&spreads).enumerate().map(|(i, (r, s))| {
        let colour = if r.kind == Kind::Ours { OURS } else { PEER };
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), s.median),
            ],
            colour.filled(),
        );
        bar.set_margin(0, 0, 14, 14);
        bar
    }))?;
    chart.draw_series(spreads.iter().enumerate().map(|(i, s)| {
        PathElement::new(
            vec![
                (SegmentValue::CenterOf(i), s.min),
                (SegmentValue::CenterOf(i), s.max),
            ],
            BLACK.stroke_width(2),
        )
    }))?;
    chart.draw_series(spreads.iter().enumerate().map(|(i, s)| {
        Text::new(
            thousands(s.median),
            (SegmentValue::CenterOf(i), s.max + top * 0.015),
            TextStyle::from((FONT, 13).into_font()).pos(centered()),
        )
    }))?;
    Ok(())
}

fn latency<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, rows: &[&Row]) -> Drawn<DB> {
    let n = rows.len();
    let floor = 10.0;
    let p99 = |r: &Row| (r.single_p99.unwrap_or(floor), r.loaded_p99.unwrap_or(floor));
    let top = rows
        .iter()
        .map(|r| p99(r).0.max(p99(r).1))
        .fold(floor * 10.0, f64::max)
        // Headroom on the log scale for the value labels and the legend.
        * 20.0;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "p99 latency, µs ({}; log scale)",
                LOAD_GENERATOR.bench_name()
            ),
            (FONT, 15),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(72)
        .build_cartesian_2d(categories(n), (floor..top).log_scale())?;
    let label = label_of(rows);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
        .x_labels(n)
        .x_label_formatter(&label)
        .y_label_formatter(&|v| thousands(*v))
        .y_desc("µs")
        .draw()?;
    // Two bars per server: each takes half of its segment.
    let half = chart.plotting_area().dim_in_pixel().0 / n.max(1) as u32 / 2;
    let bars = |value: &dyn Fn(&Row) -> f64, colour: RGBColor, left: bool| {
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), floor),
                        (SegmentValue::Exact(i + 1), value(r)),
                    ],
                    colour.filled(),
                );
                if left {
                    bar.set_margin(0, 0, 10, half + 1);
                } else {
                    bar.set_margin(0, 0, half + 1, 10);
                }
                bar
            })
            .collect::<Vec<_>>()
    };
    chart
        .draw_series(bars(&|r| p99(r).0, SINGLE, true))?
        .label("p99 at 1 connection × 1 call")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], SINGLE.filled()));
    chart
        .draw_series(bars(&|r| p99(r).1, LOADED, false))?
        .label("p99 at 50 connections × 10 calls")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], LOADED.filled()));
    chart.draw_series(rows.iter().enumerate().map(|(i, r)| {
        let (a, b) = p99(r);
        Text::new(
            format!("{} / {}", thousands(a), thousands(b)),
            (SegmentValue::CenterOf(i), a.max(b) * 1.12),
            TextStyle::from((FONT, 12).into_font()).pos(centered()),
        )
    }))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()?;
    Ok(())
}
