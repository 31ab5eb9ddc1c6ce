//! The usage page (admin) and its JSON: over the last day, week or month,
//! answers per hour, time to first token and whole-answer time (P50, P95,
//! P99), refusal, escalation and verification rates, each tier's share, the
//! thumbs-up rate, and the cost per answer against a cloud API's price for
//! the same tokens. Built from `answer_metrics` (no question text); charts
//! drawn here as SVG with plotters, so the page loads nothing from
//! anywhere else.

use std::collections::BTreeMap;

use actix_web::HttpResponse;
use actix_web::web::{self, Data};
use askama::Template;
use serde::{Deserialize, Serialize};

use super::auth::AdminSession;
use super::error::ApiError;
use super::state::{AppState, StateExt};
use crate::config::CostConfig;
use crate::metrics::percentile;
use crate::store;
use crate::store::usage::AnswerMetric;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    #[default]
    Day,
    Week,
    Month,
}

impl Period {
    fn parse(s: &str) -> Option<Period> {
        match s {
            "day" => Some(Period::Day),
            "week" => Some(Period::Week),
            "month" => Some(Period::Month),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    fn seconds(self) -> i64 {
        match self {
            Period::Day => 86_400,
            Period::Week => 7 * 86_400,
            Period::Month => 30 * 86_400,
        }
    }

    /// Bars on the chart: hours for a day, six hours for a week, days for a
    /// month (each bar's height is still answers per hour).
    fn bucket_seconds(self) -> i64 {
        match self {
            Period::Day => 3_600,
            Period::Week => 6 * 3_600,
            Period::Month => 86_400,
        }
    }
}

/// P50, P95 and P99, in seconds.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Quantiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Quantiles {
    fn of_ms(mut values: Vec<f64>) -> Quantiles {
        values.sort_by(f64::total_cmp);
        Quantiles {
            p50: percentile(&values, 0.50) / 1000.0,
            p95: percentile(&values, 0.95) / 1000.0,
            p99: percentile(&values, 0.99) / 1000.0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TierUsage {
    pub tier: String,
    pub answers: usize,
    /// Of the answers a model wrote.
    pub share: f64,
    pub first_token: Quantiles,
    pub whole_answer: Quantiles,
    pub prompt_tokens: i64,
    pub generated_tokens: i64,
    pub cpu_secs: f64,
    pub cost_per_answer: f64,
    pub cloud_cost_per_answer: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    /// Unix seconds.
    pub start: i64,
    pub answers: usize,
    pub answers_per_hour: f64,
    pub not_covered: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    pub currency: String,
    pub machine_per_hour: f64,
    pub per_cpu_second: f64,
    pub cores: usize,
    pub total: f64,
    /// Per question (not-covered ones cost next to nothing and count too).
    pub per_answer: f64,
    pub cloud_name: String,
    pub cloud_total: f64,
    pub cloud_per_answer: f64,
    /// `cloud_total - total`.
    pub saving: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub period: Period,
    pub since: i64,
    pub until: i64,
    pub questions: usize,
    pub answered: usize,
    pub not_covered: usize,
    pub failed: usize,
    pub refused_busy: usize,
    pub cancelled: usize,
    /// Not covered by the documents, of all questions.
    pub refusal_rate: f64,
    /// Of the answers a model wrote, how many went to a larger tier.
    pub escalation_rate: f64,
    /// verified / partial / quoted / none, as shares of answered questions.
    pub verification: BTreeMap<String, f64>,
    pub first_token: Quantiles,
    pub whole_answer: Quantiles,
    pub tiers: Vec<TierUsage>,
    pub thumbs_up: usize,
    pub thumbs_down: usize,
    /// Up of all thumbs given; `None` without any.
    pub thumbs_up_rate: Option<f64>,
    pub cost: Cost,
    pub buckets: Vec<Bucket>,
}

fn rate(n: usize, of: usize) -> f64 {
    if of == 0 { 0.0 } else { n as f64 / of as f64 }
}

/// Aggregate the rows of one period ending at `until`.
pub fn summarise(
    rows: &[AnswerMetric],
    period: Period,
    until: i64,
    cost: &CostConfig,
    cores: usize,
) -> Usage {
    let since = until - period.seconds();
    let rows: Vec<&AnswerMetric> = rows
        .iter()
        .filter(|r| r.at >= since && r.at <= until)
        .collect();
    let count = |f: &dyn Fn(&AnswerMetric) -> bool| rows.iter().filter(|r| f(r)).count();
    let questions = rows.len();
    let answered = count(&|r| r.status == "answered");
    let not_covered = count(&|r| r.status == "not_covered");
    let modelled: Vec<&&AnswerMetric> = rows.iter().filter(|r| !r.tier.is_empty()).collect();
    let escalated = modelled.iter().filter(|r| r.escalated).count();
    let mut verification = BTreeMap::new();
    for v in ["verified", "partial", "quoted", "none"] {
        verification.insert(
            v.to_string(),
            rate(
                count(&|r| r.status == "answered" && r.verification == v),
                answered,
            ),
        );
    }
    let per_cpu_second = cost.per_cpu_second(cores);
    let mut tier_names: Vec<&str> = modelled.iter().map(|r| r.tier.as_str()).collect();
    tier_names.sort_unstable();
    tier_names.dedup();
    let tiers = tier_names
        .into_iter()
        .map(|tier| {
            let mine: Vec<&&&AnswerMetric> = modelled.iter().filter(|r| r.tier == tier).collect();
            let n = mine.len();
            let prompt: i64 = mine.iter().map(|r| r.prompt_tokens).sum();
            let generated: i64 = mine.iter().map(|r| r.generated_tokens).sum();
            let cpu: f64 = mine.iter().map(|r| r.cpu_secs).sum();
            TierUsage {
                tier: tier.to_string(),
                answers: n,
                share: rate(n, modelled.len()),
                first_token: Quantiles::of_ms(
                    mine.iter().filter_map(|r| r.first_token_ms).collect(),
                ),
                whole_answer: Quantiles::of_ms(mine.iter().map(|r| r.total_ms).collect()),
                prompt_tokens: prompt,
                generated_tokens: generated,
                cpu_secs: cpu,
                cost_per_answer: cpu * per_cpu_second / n.max(1) as f64,
                cloud_cost_per_answer: cost
                    .cloud_cost(prompt.max(0) as u64, generated.max(0) as u64)
                    / n.max(1) as f64,
            }
        })
        .collect();
    let thumbs_up = count(&|r| r.rating == Some(1));
    let thumbs_down = count(&|r| r.rating == Some(-1));
    let total_cpu: f64 = rows.iter().map(|r| r.cpu_secs).sum();
    let prompt: i64 = rows.iter().map(|r| r.prompt_tokens).sum();
    let generated: i64 = rows.iter().map(|r| r.generated_tokens).sum();
    let total = total_cpu * per_cpu_second;
    let cloud_total = cost.cloud_cost(prompt.max(0) as u64, generated.max(0) as u64);
    let step = period.bucket_seconds();
    let first_bucket = since - since.rem_euclid(step);
    let buckets = (0..)
        .map(|i| first_bucket + i * step)
        .take_while(|start| *start <= until)
        .map(|start| {
            let inside: Vec<&&AnswerMetric> = rows
                .iter()
                .filter(|r| r.at >= start && r.at < start + step)
                .collect();
            Bucket {
                start,
                answers: inside.len(),
                answers_per_hour: inside.len() as f64 * 3_600.0 / step as f64,
                not_covered: inside.iter().filter(|r| r.status == "not_covered").count(),
            }
        })
        .collect();
    Usage {
        period,
        since,
        until,
        questions,
        answered,
        not_covered,
        failed: count(&|r| r.status == "failed"),
        refused_busy: count(&|r| r.outcome == "refused_busy"),
        cancelled: count(&|r| r.outcome == "cancelled"),
        refusal_rate: rate(not_covered, questions),
        escalation_rate: rate(escalated, modelled.len()),
        verification,
        first_token: Quantiles::of_ms(rows.iter().filter_map(|r| r.first_token_ms).collect()),
        whole_answer: Quantiles::of_ms(rows.iter().map(|r| r.total_ms).collect()),
        tiers,
        thumbs_up,
        thumbs_down,
        thumbs_up_rate: (thumbs_up + thumbs_down > 0)
            .then(|| rate(thumbs_up, thumbs_up + thumbs_down)),
        cost: Cost {
            currency: cost.currency.clone(),
            machine_per_hour: cost.machine_per_hour(),
            per_cpu_second,
            cores,
            total,
            per_answer: total / questions.max(1) as f64,
            cloud_name: cost.cloud_name.clone(),
            cloud_total,
            cloud_per_answer: cloud_total / questions.max(1) as f64,
            saving: cloud_total - total,
        },
        buckets,
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

async fn load(state: &Data<AppState>, period: Period) -> Result<Usage, ApiError> {
    let until = crate::time::unix_now();
    let since = until - period.seconds();
    let cost = state.config.cost.clone();
    // Read and aggregated on the blocking pool: a month can be many rows.
    state
        .with_db(move |db| {
            let rows = db.autocommit(|c| store::usage::since(c, since))?;
            Ok(summarise(&rows, period, until, &cost, cores()))
        })
        .await
}

/// Every view of the usage page and every read of its JSON is audited (it
/// describes staff activity); the charts are part of the page's view.
async fn audit_view(
    state: &Data<AppState>,
    admin: &AdminSession,
    what: &str,
    period: Period,
) -> Result<(), ApiError> {
    let entry = crate::audit::Entry::new(&admin.actor(), "usage.view", what.to_string())
        .detail(serde_json::json!({ "period": period.as_str() }));
    state.with_db(move |db| Ok(db.record(entry)?)).await
}

#[derive(Deserialize)]
pub struct PeriodQuery {
    #[serde(default)]
    pub period: Option<String>,
}

fn period_of(q: &PeriodQuery) -> Result<Period, ApiError> {
    match q.period.as_deref() {
        None | Some("") => Ok(Period::Day),
        Some(p) => {
            Period::parse(p).ok_or_else(|| ApiError::bad_request("period is day, week or month"))
        }
    }
}

/// `GET /api/usage?period=day|week|month`
pub async fn usage_json(
    state: Data<AppState>,
    admin: AdminSession,
    q: web::Query<PeriodQuery>,
) -> Result<HttpResponse, ApiError> {
    let period = period_of(&q)?;
    audit_view(&state, &admin, "usage:json", period).await?;
    Ok(HttpResponse::Ok().json(load(&state, period).await?))
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    csrf: String,
    username: String,
    role: String,
    u: Usage,
    period: &'static str,
    tiers_configured: Vec<String>,
}

/// `GET /admin/usage?period=…`
pub async fn page(
    state: Data<AppState>,
    admin: AdminSession,
    q: web::Query<PeriodQuery>,
) -> Result<HttpResponse, ApiError> {
    let period = period_of(&q)?;
    audit_view(&state, &admin, "usage:page", period).await?;
    let u = load(&state, period).await?;
    let html = UsagePage {
        csrf: admin.session.csrf_token.clone(),
        username: admin.user().username.clone(),
        role: admin.user().role.as_str().into(),
        u,
        period: period.as_str(),
        tiers_configured: state.tiers.iter().map(|t| t.name.clone()).collect(),
    }
    .render()
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// `GET /admin/usage/charts/{period}/{answers|latency}.svg`: drawn here.
pub async fn chart(
    state: Data<AppState>,
    _admin: AdminSession,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (period, chart) = path.into_inner();
    let period = Period::parse(&period).ok_or_else(ApiError::not_found)?;
    let u = load(&state, period).await?;
    let svg = match chart.as_str() {
        "answers.svg" => charts::answers_per_hour(&u),
        "latency.svg" => charts::latency(&u),
        _ => return Err(ApiError::not_found()),
    }
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("image/svg+xml").body(svg))
}

/// The charts, with plotters' SVG backend.
mod charts {
    use plotters::prelude::*;

    use super::Usage;

    const WIDTH: u32 = 720;
    const HEIGHT: u32 = 240;
    const BAR: RGBColor = RGBColor(0x2b, 0x6c, 0xb0);
    const REFUSED: RGBColor = RGBColor(0xb0, 0x6c, 0x2b);

    /// An axis label: how long before the end of the period.
    fn label(at: i64, until: i64) -> String {
        let ago = (until - at).max(0);
        match ago {
            0..1_800 => "now".to_string(),
            1_800..172_800 => format!("-{} h", (ago + 1_800) / 3_600),
            _ => format!("-{} d", (ago + 43_200) / 86_400),
        }
    }

    /// Answers per hour, with the not-covered share of each bar in another colour.
    pub fn answers_per_hour(u: &Usage) -> Result<String, String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let max = u
                .buckets
                .iter()
                .map(|b| b.answers_per_hour)
                .fold(1.0f64, f64::max);
            let step = u.period.bucket_seconds();
            let mut chart = ChartBuilder::on(&root)
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(45)
                .caption(
                    "Answers per hour (orange: not covered by the documents)",
                    ("sans-serif", 14),
                )
                .build_cartesian_2d(u.since..u.until + step, 0.0..max * 1.1)
                .map_err(|e| e.to_string())?;
            let until = u.until;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(8)
                .x_label_formatter(&|x| label(*x, until))
                .y_desc("answers / hour")
                .draw()
                .map_err(|e| e.to_string())?;
            let scale = 3_600.0 / step as f64;
            chart
                .draw_series(u.buckets.iter().map(|b| {
                    Rectangle::new(
                        [
                            (b.start, 0.0),
                            (b.start + step * 9 / 10, b.answers_per_hour),
                        ],
                        BAR.filled(),
                    )
                }))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(u.buckets.iter().filter(|b| b.not_covered > 0).map(|b| {
                    Rectangle::new(
                        [
                            (b.start, 0.0),
                            (b.start + step * 9 / 10, b.not_covered as f64 * scale),
                        ],
                        REFUSED.filled(),
                    )
                }))
                .map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(svg)
    }

    /// P50 / P95 / P99 of first token and whole answer, per tier: three
    /// bars per row, so equal quantiles (few answers) stay visible.
    pub fn latency(u: &Usage) -> Result<String, String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let mut rows: Vec<(String, [f64; 3])> = Vec::new();
            for t in &u.tiers {
                let q = |q: &super::Quantiles| [q.p50, q.p95, q.p99];
                rows.push((format!("{} first token", short(&t.tier)), q(&t.first_token)));
                rows.push((
                    format!("{} whole answer", short(&t.tier)),
                    q(&t.whole_answer),
                ));
            }
            let max = rows
                .iter()
                .flat_map(|(_, q)| q.iter().copied())
                .fold(1.0f64, f64::max);
            let bars = (rows.len() * 3).max(1) as i32;
            let names: Vec<String> = rows.iter().map(|(n, _)| n.clone()).collect();
            let mut chart = ChartBuilder::on(&root)
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(210)
                .caption(
                    "Seconds per tier: P50 (dark), P95, P99 (light)",
                    ("sans-serif", 14),
                )
                .build_cartesian_2d(0.0..max * 1.1, 0..bars)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(bars as usize + 1)
                .y_label_formatter(&|y| {
                    // One label per row of three bars, at its middle line.
                    let (row, within) = ((*y / 3) as usize, *y % 3);
                    if within == 1 {
                        names.get(row).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .x_desc("seconds")
                .draw()
                .map_err(|e| e.to_string())?;
            let shades = [
                RGBColor(0x1a, 0x44, 0x70),
                RGBColor(0x2b, 0x6c, 0xb0),
                RGBColor(0x9c, 0xc3, 0xe6),
            ];
            chart
                .draw_series(rows.iter().enumerate().flat_map(|(i, (_, v))| {
                    (0..3).map(move |q| {
                        let y = (i * 3 + q) as i32;
                        Rectangle::new([(0.0, y), (v[q], y + 1)], shades[q].filled())
                    })
                }))
                .map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(svg)
    }

    /// A tier name short enough for the axis.
    pub(super) fn short(name: &str) -> String {
        if name.chars().count() <= 24 {
            name.to_string()
        } else {
            format!("{}…", name.chars().take(23).collect::<String>())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charts_short(name: &str) -> String {
        charts::short(name)
    }

    fn row(at: i64, status: &str, tier: &str, verification: &str) -> AnswerMetric {
        AnswerMetric {
            message_id: at,
            at,
            via: "web".into(),
            status: status.into(),
            outcome: if status == "not_covered" {
                "not_covered"
            } else {
                "ok"
            }
            .into(),
            tier: tier.into(),
            verification: verification.into(),
            escalated: false,
            first_token_ms: (!tier.is_empty()).then_some(1000.0),
            total_ms: 4000.0,
            prompt_tokens: if tier.is_empty() { 0 } else { 1000 },
            generated_tokens: if tier.is_empty() { 0 } else { 100 },
            cpu_secs: if tier.is_empty() { 0.0 } else { 2.0 },
            rating: None,
        }
    }

    #[test]
    fn a_day_is_summarised_into_rates_quantiles_and_costs() {
        let until = 1_000_000;
        let mut rows = vec![
            row(until - 100, "answered", "smollm2", "verified"),
            row(until - 200, "answered", "smollm2", "partial"),
            row(until - 3_700, "not_covered", "", "none"),
            row(until - 90_000, "answered", "smollm2", "verified"), // older than a day
        ];
        rows[0].rating = Some(1);
        rows[1].rating = Some(-1);
        rows[1].escalated = true;
        rows[1].tier = "qwen-7b".into();
        let cost = CostConfig {
            hardware_per_hour: 0.36,
            power_watts: 0.0,
            cloud_input_per_million: 1.0,
            cloud_output_per_million: 2.0,
            ..CostConfig::default()
        };
        let u = summarise(&rows, Period::Day, until, &cost, 2);
        assert_eq!((u.questions, u.answered, u.not_covered), (3, 2, 1));
        assert!((u.refusal_rate - 1.0 / 3.0).abs() < 1e-9);
        assert!((u.escalation_rate - 0.5).abs() < 1e-9);
        assert_eq!(u.verification["verified"], 0.5);
        assert_eq!(u.thumbs_up_rate, Some(0.5));
        assert_eq!(u.tiers.len(), 2);
        // 0.36 per hour on 2 cores: 0.00005 per CPU-second; 2 s per answer.
        assert!((u.cost.per_cpu_second - 0.00005).abs() < 1e-12);
        assert!((u.tiers[0].cost_per_answer - 0.0001).abs() < 1e-12);
        // 1000 in at 1/M and 100 out at 2/M.
        assert!((u.tiers[0].cloud_cost_per_answer - 0.0012).abs() < 1e-12);
        assert!((u.cost.total - 0.0002).abs() < 1e-12);
        assert!(u.cost.saving > 0.0);
        assert_eq!(u.first_token.p50, 1.0);
        assert_eq!(u.whole_answer.p99, 4.0);
        assert_eq!(u.buckets.iter().map(|b| b.answers).sum::<usize>(), 3);
        assert_eq!(u.buckets.iter().map(|b| b.not_covered).sum::<usize>(), 1);
    }

    #[test]
    fn charts_are_svg_with_their_captions() {
        let until = 1_000_000;
        let rows = vec![row(until - 100, "answered", "smollm2", "verified")];
        let u = summarise(&rows, Period::Week, until, &CostConfig::default(), 2);
        let svg = charts::answers_per_hour(&u).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("Answers per hour"),
            "{svg}"
        );
        assert!(!svg.contains("<script"));
        let svg = charts::latency(&u).unwrap();
        assert!(svg.contains("smollm2 whole answer"), "{svg}");
        assert_eq!(
            charts_short("SmolLM2-135M-Instruct.Q4_1-long-name"),
            "SmolLM2-135M-Instruct.Q…"
        );
    }
}
