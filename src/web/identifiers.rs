//! The sensitive-identifier report (admins): each collection's policy with
//! a form to change it (which re-processes the collection), the findings per
//! document and type, masked, with filters, and a CSV export. Every view and
//! export is audited.

use actix_web::HttpResponse;
use actix_web::web::{self, Data};
use askama::Template;
use serde::Deserialize;

use super::auth::AdminSession;
use super::error::ApiError;
use super::state::{AppState, StateExt};
use crate::audit::Entry;
use crate::config::PiiPolicy;
use crate::ingest::rescreen::{Summary, rescreen_document};
use crate::ingest::screen::findings_csv;
use crate::store::pii::{CollectionPolicy, FindingFilter, FindingRow};

/// Findings listed on the page at most (the CSV has them all).
const PAGE_ROWS: usize = 500;

/// The report's filters, from the query string ("" is none).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub collection: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub document: String,
}

impl Filter {
    fn to_store(&self, limit: usize) -> Result<FindingFilter, ApiError> {
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        let document = match some(&self.document) {
            Some(d) => Some(
                d.parse::<i64>()
                    .map_err(|_| ApiError::bad_request("the document id is a number"))?,
            ),
            None => None,
        };
        Ok(FindingFilter {
            collection: some(&self.collection),
            kind: some(&self.kind),
            document,
            limit,
        })
    }

    fn audit_detail(&self) -> serde_json::Value {
        serde_json::json!({
            "collection": self.collection, "kind": self.kind, "document": self.document,
        })
    }
}

/// Findings of one document, grouped for the page.
struct DocumentFindings {
    document_id: i64,
    title: String,
    collection: String,
    /// "3 ssn, 1 email".
    summary: String,
    rows: Vec<FindingRow>,
}

#[derive(Template)]
#[template(path = "identifiers.html")]
struct IdentifiersPage {
    csrf: String,
    username: String,
    role: String,
    policies: Vec<CollectionPolicy>,
    kinds: Vec<(String, i64)>,
    documents: Vec<DocumentFindings>,
    shown: usize,
    truncated: bool,
    filter: Filter,
    /// The collection the policy form starts on, and its policy.
    form_collection: String,
    form_policy: &'static str,
}

fn group(rows: Vec<FindingRow>) -> Vec<DocumentFindings> {
    let mut out: Vec<DocumentFindings> = Vec::new();
    for row in rows {
        match out.last_mut() {
            Some(d) if d.document_id == row.document_id => d.rows.push(row),
            _ => out.push(DocumentFindings {
                document_id: row.document_id,
                title: row.title.clone(),
                collection: row.collection.clone(),
                summary: String::new(),
                rows: vec![row],
            }),
        }
    }
    for d in &mut out {
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for r in &d.rows {
            *counts.entry(&r.kind).or_default() += 1;
        }
        d.summary = counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
    }
    out
}

/// `GET /admin/identifiers`.
pub async fn page(
    state: Data<AppState>,
    authed: AdminSession,
    filter: web::Query<Filter>,
) -> Result<HttpResponse, ApiError> {
    let filter = filter.into_inner();
    let query = filter.to_store(PAGE_ROWS + 1)?;
    let (actor, detail) = (authed.actor(), filter.audit_detail());
    let (policies, kinds, mut rows) = state
        .with_db(move |store| {
            let entry = Entry::new(&actor, "pii.report.view", "pii_findings").detail(detail);
            store.record(entry)?;
            Ok((
                store.collection_policies()?,
                store.finding_kinds()?,
                store.findings(&query)?,
            ))
        })
        .await?;
    let truncated = rows.len() > PAGE_ROWS;
    let current = policies
        .iter()
        .find(|p| p.collection == filter.collection)
        .or(policies.first());
    let form_collection = current.map(|p| p.collection.clone()).unwrap_or_default();
    let form_policy = current.map_or("report", |p| p.policy.as_str());
    rows.truncate(PAGE_ROWS);
    let html = IdentifiersPage {
        csrf: authed.session.csrf_token.clone(),
        username: authed.user().username.clone(),
        role: authed.user().role.as_str().into(),
        policies,
        kinds,
        shown: rows.len(),
        truncated,
        documents: group(rows),
        filter,
        form_collection,
        form_policy,
    }
    .render()
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// `GET /api/identifiers/export`: the filtered findings as CSV.
pub async fn export(
    state: Data<AppState>,
    authed: AdminSession,
    filter: web::Query<Filter>,
) -> Result<HttpResponse, ApiError> {
    let filter = filter.into_inner();
    let query = filter.to_store(0)?;
    let (actor, detail) = (authed.actor(), filter.audit_detail());
    let rows = state
        .with_db(move |store| {
            let entry = Entry::new(&actor, "pii.report.export", "pii_findings").detail(detail);
            store.record(entry)?;
            Ok(store.findings(&query)?)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"identifier-findings.csv\"",
        ))
        .body(findings_csv(&rows)))
}

#[derive(Debug, Deserialize)]
pub struct PolicyBody {
    pub collection: String,
    pub policy: String,
}

/// `POST /api/identifiers/policy`: set a collection's policy and re-process
/// its documents (the answer says what became of them).
pub async fn set_policy(
    state: Data<AppState>,
    authed: AdminSession,
    body: web::Json<PolicyBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let policy = PiiPolicy::parse(body.policy.trim())
        .ok_or_else(|| ApiError::bad_request("the policy is report, redact or reject"))?;
    let collection = body.collection.trim().to_string();
    crate::accounts::validate_name(&collection)?;
    let actor = authed.actor();
    let (entry_actor, c) = (actor.clone(), collection.clone());
    let (previous, waiting) = state
        .with_db(move |db| {
            let entry = Entry::new(&entry_actor, "pii.policy", format!("collection:{c}"))
                .detail(serde_json::json!({ "policy": policy.as_str() }));
            let previous = db.set_collection_policy(&c, policy, Some(&entry))?;
            Ok((previous, db.documents_to_rescreen(Some(&c))?))
        })
        .await?;
    // One document per turn with the library, so questions and uploads go
    // on meanwhile (documents waiting are hidden from search if the new
    // policy redacts or rejects).
    let mut summary = Summary::default();
    for id in waiting {
        let actor = actor.clone();
        let result = state
            .with_library(move |lib| Ok(rescreen_document(lib, id, &actor)))
            .await?;
        summary.add(id, result);
    }
    if summary.rewritten > 0 {
        state
            .with_library(|lib| {
                lib.purge_deleted();
                Ok(())
            })
            .await?;
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "policy": policy.as_str(),
        "previous": previous.as_str(),
        "reprocessed": summary,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_are_grouped_per_document_with_a_summary() {
        let row = |doc: i64, kind: &str| FindingRow {
            id: 0,
            document_id: doc,
            title: format!("doc {doc}"),
            collection: "c".into(),
            page: 1,
            char_start: 0,
            char_end: 1,
            kind: kind.into(),
            confidence: 0.9,
            masked: "•1".into(),
            keyed_hash: String::new(),
            documents_with_same: 1,
        };
        let g = group(vec![
            row(1, "ssn"),
            row(1, "email"),
            row(1, "ssn"),
            row(2, "iban"),
        ]);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].summary, "1 email, 2 ssn");
        assert_eq!(g[1].rows.len(), 1);
    }
}
