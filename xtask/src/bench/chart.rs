//! benchmarks.svg: getOrder requests/s (median bar, min–max whisker) and
//! p99 latency (at 1×1 and at 50×10, log scale) per server, from the same
//! summary rows as the table. scaling.svg: each store-size measurement
//! against the number of orders, with its target.

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

/// One line of a scaling panel: its name, colour and (orders, value) points.
type Line = (&'static str, RGBColor, Vec<(f64, f64)>);

const TARGET: RGBColor = RGBColor(0xc0, 0x39, 0x2b);

/// scaling.svg: each store-size measurement against the number of orders
/// (log-log), with its target as a dashed line.
pub fn draw_scaling(path: &Path, summary: &Summary) -> Result<()> {
    use super::targets::{
        MATCH_ALL_PER_SECOND, RARE_SEARCH_US, RSS_UNDER_LOAD_KIB, START_UP_SECONDS,
    };
    let root = SVGBackend::new(path, (1200, 760)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let r = summary.results;
    let title = format!(
        "our server against store size (orders, log scale), server on core 0, load on core 1: {}",
        r.date
    );
    let body = root.titled(&title, (FONT, 18)).map_err(|e| fail(&e))?;
    let points = match &r.scaling {
        Ok(s) if !s.points.is_empty() => &s.points,
        other => {
            let why = other
                .as_ref()
                .err()
                .map_or("no store measured", String::as_str);
            body.draw(&Text::new(
                format!("store-size series: {why}"),
                (40, 40),
                (FONT, 16).into_font(),
            ))
            .map_err(|e| fail(&e))?;
            return root.present().map_err(|e| fail(&e));
        }
    };
    let series = |f: &dyn Fn(&super::results::SizePoint) -> Option<f64>| -> Vec<(f64, f64)> {
        points
            .iter()
            .filter_map(|p| Some((p.store.orders as f64, f(p)?)))
            .collect()
    };
    let mib = |kib: u64| kib as f64 / 1024.0;
    let panels: [(&str, &str, Vec<Line>, Option<f64>); 6] = [
        (
            "searchOrders, term in 1 order: server time (median)",
            "ms",
            vec![(
                "server time",
                OURS,
                series(&|p| p.rare_server_median_us().map(|u| u / 1e3)),
            )],
            Some(RARE_SEARCH_US / 1e3),
        ),
        (
            "searchOrders, term in every order: orders streamed",
            "orders/s",
            vec![(
                "orders/s",
                OURS,
                series(&|p| p.all_verified().then_some(p.all.messages_per_second)),
            )],
            Some(MATCH_ALL_PER_SECOND),
        ),
        (
            "start-up: spawn to `listening on` (median)",
            "ms",
            vec![(
                "start-up",
                OURS,
                series(&|p| p.start_up_median().map(|s| s * 1e3)),
            )],
            Some(START_UP_SECONDS * 1e3),
        ),
        (
            "RSS",
            "MiB",
            vec![
                (
                    "max under getOrder",
                    OURS,
                    series(&|p| Some(mib(p.get_peak_kib))),
                ),
                (
                    "at start",
                    SINGLE,
                    series(&|p| Some(mib(p.rss_at_start_kib))),
                ),
                (
                    "peak while searching",
                    LOADED,
                    series(&|p| Some(mib(p.hwm_kib))),
                ),
            ],
            Some(RSS_UNDER_LOAD_KIB / 1024.0),
        ),
        (
            "bulk load (examples/bulk_load)",
            "s",
            vec![("load time", OURS, series(&|p| Some(p.store.load_seconds)))],
            None,
        ),
        (
            "data dir size",
            "MiB",
            vec![(
                "size",
                OURS,
                series(&|p| Some(p.store.bytes as f64 / 1024.0 / 1024.0)),
            )],
            None,
        ),
    ];
    let sizes: Vec<f64> = points.iter().map(|p| p.store.orders as f64).collect();
    let x_range = (
        sizes.iter().copied().fold(f64::MAX, f64::min) / 2.0,
        sizes.iter().copied().fold(1.0, f64::max) * 2.0,
    );
    let areas = body.split_evenly((2, 3));
    for (area, (caption, unit, lines, target)) in areas.iter().zip(panels) {
        scaling_panel(area, caption, unit, &lines, target, x_range).map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))
}

fn scaling_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    unit: &str,
    lines: &[Line],
    target: Option<f64>,
    (x0, x1): (f64, f64),
) -> Drawn<DB> {
    let values = lines
        .iter()
        .flat_map(|(_, _, v)| v.iter().map(|p| p.1))
        .chain(target)
        .filter(|v| *v > 0.0);
    let (lo, hi) = values.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (y0, y1) = if hi > 0.0 {
        (lo / 3.0, hi * 4.0)
    } else {
        (0.1, 10.0)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 14))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(64)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|v| short_number(*v))
        .y_label_formatter(&|v| short_number(*v))
        .y_desc(unit)
        .draw()?;
    if let Some(t) = target {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x0, t), (x1, t)],
                6,
                4,
                TARGET.stroke_width(2),
            ))?
            .label(format!("target {}", short_number(t)))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], TARGET.stroke_width(2)));
    }
    for (name, colour, points) in lines {
        let colour = *colour;
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 12, y + 4)], colour.filled()));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled())))?;
        chart.draw_series(points.iter().map(|&(x, y)| {
            Text::new(
                short_number(y),
                (x, y * 1.25),
                TextStyle::from((FONT, 11).into_font()).pos(centered()),
            )
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 11))
        .draw()?;
    Ok(())
}

/// 1500000 -> "1.5M", 10000 -> "10k", 0.25 -> "0.25".
fn short_number(x: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    match x.abs() {
        a if a >= 1e6 => format!("{}M", trim(format!("{:.1}", x / 1e6))),
        a if a >= 1e4 => format!("{}k", trim(format!("{:.1}", x / 1e3))),
        a if a >= 100.0 => format!("{x:.0}"),
        a if a >= 1.0 => trim(format!("{x:.1}")),
        _ => trim(format!("{x:.2}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers() {
        assert_eq!(short_number(1_500_000.0), "1.5M");
        assert_eq!(short_number(1_000_000.0), "1M");
        assert_eq!(short_number(10_000.0), "10k");
        assert_eq!(short_number(300.0), "300");
        assert_eq!(short_number(64.0), "64");
        assert_eq!(short_number(5.26), "5.3");
        assert_eq!(short_number(0.25), "0.25");
    }
}
