//! A report as a self-contained HTML page (inline CSS and SVG, no external
//! request, readable on a phone, printable) and as CSV. Numbers on the page
//! carry `data-metric` attributes so tests can read them back.

use std::fmt::Write;

use super::{Count, StandReport};

/// Escapes text for HTML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn duration(seconds: Option<u64>) -> String {
    match seconds {
        None => "not shown (fewer than 5 visits)".into(),
        Some(s) if s < 60 => format!("{s} s"),
        Some(s) => format!("{} min {:02} s", s / 60, s % 60),
    }
}

/// A bar chart of labelled counts; bars under 5 are drawn at zero height
/// and labelled "<5", so the picture reveals no more than the numbers.
fn bars(title: &str, metric: &str, data: &[(String, Count)]) -> String {
    let width = 640.0;
    let height = 180.0;
    let top = 16.0;
    let bottom = 36.0;
    let max = data
        .iter()
        .map(|(_, c)| if c.0 < super::MIN_SHOWN { 0 } else { c.0 })
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = width / data.len().max(1) as f64;
    let mut svg = format!(
        "<svg viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{}\" \
         preserveAspectRatio=\"xMidYMid meet\">",
        esc(title)
    );
    for (i, (label, count)) in data.iter().enumerate() {
        let value = if count.0 < super::MIN_SHOWN {
            0
        } else {
            count.0
        } as f64;
        let h = (height - top - bottom) * value / max;
        let x = i as f64 * slot + slot * 0.15;
        let y = height - bottom - h;
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" class=\"bar\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"v\" data-metric=\"{metric}\" data-key=\"{}\">{}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"k\">{}</text>",
            slot * 0.7,
            x + slot * 0.35,
            (y - 3.0).max(10.0),
            esc(label),
            count,
            x + slot * 0.35,
            height - bottom + 14.0,
            esc(label),
        );
    }
    svg.push_str("</svg>");
    format!(
        "<figure><figcaption>{}</figcaption>{svg}</figure>",
        esc(title)
    )
}

const CSS: &str = "
:root{--ink:#1d2433;--muted:#5b6478;--accent:#b5542c;--line:#e3e6ec}
*{box-sizing:border-box}
body{font:16px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--ink);margin:0;padding:1.2rem;max-width:60rem;margin-inline:auto}
h1{font-size:1.5rem;margin:.2rem 0}
h2{font-size:1.1rem;margin:1.6rem 0 .5rem;border-bottom:2px solid var(--accent);padding-bottom:.2rem}
.sub{color:var(--muted);margin:0}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:.6rem;margin-top:1rem}
.kpi{border:1px solid var(--line);border-radius:.5rem;padding:.6rem .8rem}
.kpi b{display:block;font-size:1.5rem}
.kpi span{color:var(--muted);font-size:.85rem}
table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid var(--line);padding:.35rem .4rem;text-align:left;overflow-wrap:anywhere}
.scroll{overflow-x:auto}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:0}figcaption{color:var(--muted);font-size:.9rem}
svg{width:100%;height:auto}
.bar{fill:var(--accent)}
.v{font-size:11px;text-anchor:middle;fill:var(--ink)}
.k{font-size:11px;text-anchor:middle;fill:var(--muted)}
.note{color:var(--muted);font-size:.85rem;margin-top:1.6rem}
@media (max-width:40rem){body{padding:.8rem}td,th{padding:.3rem .25rem;font-size:.85rem}.kpi b{font-size:1.25rem}}
@media print{body{padding:0;font-size:12px}.kpi{break-inside:avoid}figure{break-inside:avoid}}
";

/// The report as one HTML page.
pub fn html(r: &StandReport) -> String {
    let mut page = String::new();
    let stands: Vec<&str> = r.stands.iter().map(|s| s.stand_id.as_str()).collect();
    let _ = write!(
        page,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Stand report: {name}</title><style>{CSS}</style></head><body>\
         <h1>{name}</h1><p class=\"sub\">Stand{plural} {stands} · {venue}</p>",
        name = esc(&r.exhibitor_name),
        plural = if stands.len() > 1 { "s" } else { "" },
        stands = esc(&stands.join(", ")),
        venue = esc(&r.venue),
    );
    let peak = r
        .peak_hour
        .map(|h| format!("{h:02}:00–{:02}:00", h + 1))
        .unwrap_or_else(|| "—".into());
    let _ = write!(
        page,
        "<div class=\"kpis\">\
         <div class=\"kpi\"><b data-metric=\"visits\">{}</b><span>visits</span></div>\
         <div class=\"kpi\"><b data-metric=\"unique_visitors\">{}</b><span>unique visitors</span></div>\
         <div class=\"kpi\"><b data-metric=\"returning_visitors\">{}</b><span>came back another day</span></div>\
         <div class=\"kpi\"><b data-metric=\"median_dwell\">{}</b><span>median visit</span></div>\
         <div class=\"kpi\"><b data-metric=\"p90_dwell\">{}</b><span>9 in 10 visits shorter than</span></div>\
         <div class=\"kpi\"><b data-metric=\"peak_hour\">{}</b><span>busiest hour</span></div>\
         </div>",
        r.visits,
        r.unique_visitors,
        r.returning_visitors,
        duration(r.median_dwell_s),
        duration(r.p90_dwell_s),
        peak,
    );
    page.push_str("<h2>Compared with the pole</h2><div class=\"scroll\"><table><thead><tr><th>stand</th><th>pole</th>\
                   <th class=\"n\">visits</th><th class=\"n\">pole's median stand</th>\
                   <th class=\"n\">rank in the pole</th></tr></thead><tbody>");
    for s in &r.stands {
        let _ = write!(
            page,
            "<tr data-stand=\"{id}\"><td>{id}</td><td>{pole}</td>\
             <td class=\"n\" data-metric=\"stand_visits\" data-key=\"{id}\">{visits}</td>\
             <td class=\"n\" data-metric=\"pole_median\" data-key=\"{id}\">{median}</td>\
             <td class=\"n\" data-metric=\"rank\" data-key=\"{id}\">{rank} of {of}</td></tr>",
            id = esc(&s.stand_id),
            pole = esc(&s.pole_name),
            visits = s.visits,
            median = s.pole_median_visits,
            rank = s.rank_in_pole,
            of = s.stands_in_pole,
        );
    }
    page.push_str("</tbody></table></div><h2>When they came</h2>");
    page.push_str(&bars(
        "Visits per day",
        "day",
        &r.visits_per_day
            .iter()
            .map(|(d, c)| (d.get(5..).unwrap_or(d).to_owned(), *c))
            .collect::<Vec<_>>(),
    ));
    page.push_str(&bars(
        "Visits by hour of the day (local time, all days)",
        "hour",
        &r.visits_per_hour
            .iter()
            .map(|(h, c)| (format!("{h:02}h"), *c))
            .collect::<Vec<_>>(),
    ));
    page.push_str(
        "<h2>Who they were</h2><div class=\"scroll\"><table><thead><tr><th>ticket type</th>\
                   <th class=\"n\">unique visitors</th></tr></thead><tbody>",
    );
    for (kind, count) in &r.visitor_mix {
        let _ = write!(
            page,
            "<tr><td>{k}</td><td class=\"n\" data-metric=\"mix\" data-key=\"{k}\">{count}</td></tr>",
            k = esc(kind),
        );
    }
    page.push_str(
        "</tbody></table></div><p class=\"note\">A visit starts with a badge scan at the stand and ends \
         at the visitor's out-scan, next scan elsewhere, or closing time, and is capped (at 2 hours by default). \
         Counts under 5 are shown as “&lt;5” so that no visitor can be singled out; other \
         exhibitors appear only as the pole's median stand and a rank. Definitions: footfall \
         docs/sql.md (stand_visits).</p></body></html>",
    );
    page
}

/// The report as CSV: `section,key,value` rows.
pub fn csv(r: &StandReport) -> String {
    fn field(text: &str) -> String {
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_owned()
        }
    }
    let mut out = String::from("section,key,value\n");
    let mut row = |section: &str, key: &str, value: String| {
        let _ = writeln!(out, "{},{},{}", field(section), field(key), field(&value));
    };
    row("summary", "exhibitor", r.exhibitor.clone());
    row("summary", "exhibitor_name", r.exhibitor_name.clone());
    row("summary", "visits", r.visits.to_string());
    row("summary", "unique_visitors", r.unique_visitors.to_string());
    row(
        "summary",
        "returning_visitors",
        r.returning_visitors.to_string(),
    );
    let opt = |v: Option<u64>| v.map(|s| s.to_string()).unwrap_or_default();
    row("summary", "median_dwell_s", opt(r.median_dwell_s));
    row("summary", "p90_dwell_s", opt(r.p90_dwell_s));
    row(
        "summary",
        "peak_hour",
        r.peak_hour.map(|h| h.to_string()).unwrap_or_default(),
    );
    for s in &r.stands {
        row("stand_visits", &s.stand_id, s.visits.to_string());
        row("stand_pole", &s.stand_id, s.pole_id.clone());
        row(
            "stand_rank",
            &s.stand_id,
            format!("{} of {}", s.rank_in_pole, s.stands_in_pole),
        );
        row(
            "pole_median_visits",
            &s.stand_id,
            s.pole_median_visits.to_string(),
        );
    }
    for (day, n) in &r.visits_per_day {
        row("visits_per_day", day, n.to_string());
    }
    for (hour, n) in &r.visits_per_hour {
        row("visits_per_hour", &hour.to_string(), n.to_string());
    }
    for (kind, n) in &r.visitor_mix {
        row("visitor_mix", kind, n.to_string());
    }
    out
}
