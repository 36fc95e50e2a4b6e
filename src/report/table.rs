//! The top table: self and total (cumulative) value per function, and human units.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::merge::{Merged, SampleType};

/// One row of the top table: a function (name and file) with its hottest line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub function: String,
    pub file: String,
    /// The line of this function holding the most self value (the most total value when the
    /// function has no self value); 0 when unknown.
    pub line: i64,
    /// Value of the samples whose leaf frame is in this function.
    pub self_value: i64,
    /// Value of the samples with this function anywhere on the stack, counted once per sample
    /// even when the function recurses.
    pub total_value: i64,
}

impl Row {
    /// `function (file:line)`, `function (file)` or `function`.
    pub fn location(&self) -> String {
        super::merge::Frame { function: self.function.clone(), file: self.file.clone(), line: self.line }.display()
    }
}

/// The whole table for one sample type, rows sorted by self value, then total, then name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Top {
    /// Sum of the type over all samples: the 100 % of the percentages.
    pub total: i64,
    pub rows: Vec<Row>,
}

impl Top {
    pub fn percent(&self, v: i64) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            100.0 * v as f64 / self.total as f64
        }
    }
}

#[derive(Default)]
struct Acc {
    self_value: i64,
    total_value: i64,
    /// line → (self, total)
    lines: HashMap<i64, (i64, i64)>,
}

/// Computes the top table of sample type `t`.
pub fn top(m: &Merged, t: usize) -> Top {
    let mut by_function: HashMap<(&str, &str), Acc> = HashMap::new();
    let mut seen: Vec<(&str, &str)> = Vec::new();
    let mut total = 0i64;
    for s in &m.samples {
        let v = s.value(t);
        if v == 0 {
            continue;
        }
        total = total.saturating_add(v);
        seen.clear();
        for (depth, &fi) in s.stack.iter().enumerate() {
            let f = &m.frames[fi as usize];
            let key = (f.function.as_str(), f.file.as_str());
            let acc = by_function.entry(key).or_default();
            let line = acc.lines.entry(f.line).or_default();
            if depth == 0 {
                acc.self_value = acc.self_value.saturating_add(v);
                line.0 = line.0.saturating_add(v);
            }
            // Stacks are short: a linear scan beats hashing here.
            if !seen.contains(&key) {
                seen.push(key);
                acc.total_value = acc.total_value.saturating_add(v);
                line.1 = line.1.saturating_add(v);
            }
        }
    }
    let mut rows: Vec<Row> = by_function
        .into_iter()
        .map(|((function, file), acc)| {
            let line = acc
                .lines
                .iter()
                .max_by(|a, b| (a.1 .0.abs(), a.1 .1.abs(), -a.0).cmp(&(b.1 .0.abs(), b.1 .1.abs(), -b.0)))
                .map_or(0, |(&l, _)| l);
            Row {
                function: function.to_string(),
                file: file.to_string(),
                line,
                self_value: acc.self_value,
                total_value: acc.total_value,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.self_value
            .abs()
            .cmp(&a.self_value.abs())
            .then(b.total_value.abs().cmp(&a.total_value.abs()))
            .then_with(|| a.function.cmp(&b.function))
            .then_with(|| a.file.cmp(&b.file))
    });
    Top { total, rows }
}

/// Formats `v` of `unit` for people: nanoseconds as ns/µs/ms/s, bytes as B/KiB/MiB/GiB,
/// counts as plain integers.
pub fn human(v: i64, unit: &str) -> String {
    let time_scale = match unit {
        "nanoseconds" | "nanosecond" | "ns" => Some(1.0),
        "microseconds" | "microsecond" | "us" => Some(1e3),
        "milliseconds" | "millisecond" | "ms" => Some(1e6),
        "seconds" | "second" | "s" => Some(1e9),
        _ => None,
    };
    if let Some(scale) = time_scale {
        let ns = v as f64 * scale;
        let a = ns.abs();
        return if a >= 1e9 {
            format!("{:.2} s", ns / 1e9)
        } else if a >= 1e6 {
            format!("{:.2} ms", ns / 1e6)
        } else if a >= 1e3 {
            format!("{:.2} µs", ns / 1e3)
        } else {
            format!("{ns:.0} ns")
        };
    }
    match unit {
        "bytes" | "byte" | "B" => {
            let b = v as f64;
            let a = b.abs();
            const K: f64 = 1024.0;
            if a >= K * K * K {
                format!("{:.2} GiB", b / (K * K * K))
            } else if a >= K * K {
                format!("{:.2} MiB", b / (K * K))
            } else if a >= K {
                format!("{:.2} KiB", b / K)
            } else {
                format!("{v} B")
            }
        }
        "count" | "" | "samples" => v.to_string(),
        other => format!("{v} {other}"),
    }
}

fn percent(p: f64) -> String {
    format!("{p:.2}%")
}

/// The sample-type list with totals; the chosen type is marked with `*`.
pub fn render_types(m: &Merged, chosen: usize) -> String {
    let name_w = m.types.iter().map(|t| t.name.chars().count()).max().unwrap_or(0).max(4);
    let unit_w = m.types.iter().map(|t| t.unit.chars().count()).max().unwrap_or(0).max(4);
    let mut out = String::from("Sample types (total):\n");
    for (i, SampleType { name, unit }) in m.types.iter().enumerate() {
        let mark = if i == chosen { '*' } else { ' ' };
        let _ = writeln!(out, "  {mark} {name:<name_w$}  {unit:<unit_w$}  {:>12}", human(m.total(i), unit));
    }
    out
}

/// The top table: at most `limit` rows (all when `limit` is 0).
pub fn render_top(top: &Top, ty: &SampleType, limit: usize) -> String {
    let mut out = String::new();
    let shown = if limit == 0 { top.rows.len() } else { limit.min(top.rows.len()) };
    let _ = writeln!(
        out,
        "Top {shown} of {} functions by {} (self), total {}:",
        top.rows.len(),
        ty.name,
        human(top.total, &ty.unit)
    );
    if top.rows.is_empty() {
        let _ = writeln!(out, "  (no samples with a {} value)", ty.name);
        return out;
    }
    let cells: Vec<[String; 4]> = top.rows[..shown]
        .iter()
        .map(|r| {
            [
                human(r.self_value, &ty.unit),
                percent(top.percent(r.self_value)),
                human(r.total_value, &ty.unit),
                percent(top.percent(r.total_value)),
            ]
        })
        .collect();
    let header = ["self", "self%", "total", "total%"];
    let mut w = header.map(|h| h.chars().count());
    for c in &cells {
        for (wi, s) in w.iter_mut().zip(c) {
            *wi = (*wi).max(s.chars().count());
        }
    }
    let _ = writeln!(
        out,
        "{:>w0$}  {:>w1$}  {:>w2$}  {:>w3$}  function",
        header[0],
        header[1],
        header[2],
        header[3],
        w0 = w[0],
        w1 = w[1],
        w2 = w[2],
        w3 = w[3]
    );
    for (r, c) in top.rows[..shown].iter().zip(&cells) {
        let _ = writeln!(
            out,
            "{:>w0$}  {:>w1$}  {:>w2$}  {:>w3$}  {}",
            c[0],
            c[1],
            c[2],
            c[3],
            r.location(),
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3]
        );
    }
    if shown < top.rows.len() {
        let _ = writeln!(out, "({} more; --top 0 shows all)", top.rows.len() - shown);
    }
    out
}
