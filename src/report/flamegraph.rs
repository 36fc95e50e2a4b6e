//! Flame graphs: merged samples → folded stacks → interactive SVG (drawn by `inferno`).

use std::collections::HashMap;
use std::io::Write;

use super::merge::Merged;

/// Folded stacks for sample type `t`: `root;…;leaf value`, one line per distinct stack, sorted.
/// Frames are named `function (file:line)`, `function (file)` or `function`. Samples whose
/// value is not positive are left out (a flame graph cannot draw them).
pub fn folded(m: &Merged, t: usize) -> Vec<String> {
    let names: Vec<String> = m.frames.iter().map(|f| sanitize(&f.display())).collect();
    let mut stacks: HashMap<String, u64> = HashMap::new();
    let mut line = String::new();
    for s in &m.samples {
        let v = s.value(t);
        if v <= 0 {
            continue;
        }
        line.clear();
        for (i, &fi) in s.stack.iter().rev().enumerate() {
            if i > 0 {
                line.push(';');
            }
            line.push_str(&names[fi as usize]);
        }
        let slot = stacks.entry(line.clone()).or_default();
        *slot = slot.saturating_add(v as u64);
    }
    let mut lines: Vec<String> = stacks.into_iter().map(|(stack, v)| format!("{stack} {v}")).collect();
    lines.sort_unstable();
    lines
}

/// Makes a frame name safe for the folded format: `;` separates frames and a line ends a
/// stack, so neither may appear inside a name.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            ';' => ',',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// Writes an interactive flame graph (root at the bottom) of sample type `t` to `out`.
/// `title` heads the picture; `subtitle` goes under it. Fails when nothing can be drawn.
pub fn write_svg(m: &Merged, t: usize, title: &str, subtitle: Option<&str>, out: impl Write) -> Result<(), String> {
    let lines = folded(m, t);
    if lines.is_empty() {
        return Err(format!("no {} samples with a positive value to draw", m.types[t].name));
    }
    let unit = &m.types[t].unit;
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_string();
    options.subtitle = subtitle.map(str::to_string);
    options.count_name = match unit.as_str() {
        "" | "count" => "samples".to_string(),
        u => u.to_string(),
    };
    options.name_type = "Function:".to_string();
    // The same function gets the same colour in every graph.
    options.hash = true;
    options.direction = inferno::flamegraph::Direction::Straight;
    inferno::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), out)
        .map_err(|e| format!("cannot draw the flame graph: {e}"))
}
