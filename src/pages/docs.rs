//! `/docs`: the REST API reference, rendered from the same OpenAPI document that
//! `/openapi.json` serves, with nothing loaded from elsewhere.

use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use crate::accounts::types::FormError;

/// The parts of the OpenAPI document a reader needs, flattened for rendering.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiReference {
    pub title: String,
    pub description: String,
    pub operations: Vec<Operation>,
    pub schemas: Vec<SchemaDoc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub method: String,
    pub path: String,
    pub tag: String,
    pub summary: String,
    pub description: String,
    /// e.g. `key with keys:write`, `session`.
    pub auth: Vec<String>,
    pub params: Vec<Field>,
    /// The request body's type, when it has one.
    pub body: Option<String>,
    pub responses: Vec<ResponseDoc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseDoc {
    pub status: String,
    pub description: String,
    pub body: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaDoc {
    pub name: String,
    pub description: String,
    pub fields: Vec<Field>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub kind: String,
    pub required: bool,
    pub description: String,
}

#[server(endpoint = "docs")]
pub async fn load_api_reference() -> Result<ApiReference, FormError> {
    Ok(crate::routes::openapi::reference())
}

#[component]
pub fn DocsPage() -> impl IntoView {
    let reference = Resource::new(|| (), |_| load_api_reference());
    view! {
        <Title text="API reference" />
        <Suspense fallback=|| view! { <p class="text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match reference.await {
                    Ok(reference) => view! { <Reference reference /> }.into_any(),
                    Err(e) => view! { <p role="alert" class="text-red-700">{e.message}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Reference(reference: ApiReference) -> impl IntoView {
    let mut tags: Vec<String> = Vec::new();
    for op in &reference.operations {
        if !tags.contains(&op.tag) {
            tags.push(op.tag.clone());
        }
    }
    let sections = tags
        .into_iter()
        .map(|tag| {
            let ops = reference
                .operations
                .iter()
                .filter(|op| op.tag == tag)
                .cloned()
                .map(|op| view! { <OperationCard op /> })
                .collect_view();
            view! {
                <section class="mb-10">
                    <h2 class="mb-4 text-2xl font-semibold capitalize text-slate-900">{tag}</h2>
                    <div class="space-y-4">{ops}</div>
                </section>
            }
        })
        .collect_view();
    let schemas = reference
        .schemas
        .into_iter()
        .map(|schema| view! { <SchemaCard schema /> })
        .collect_view();
    view! {
        <h1 class="mb-2 text-3xl font-bold text-slate-900">{reference.title}</h1>
        <p class="mb-2 max-w-3xl text-slate-600">{prose(reference.description)}</p>
        <p class="mb-8 text-sm text-slate-600">
            "The machine-readable document is at "
            <a class="font-medium text-amber-700 underline" href="/openapi.json" rel="external">"/openapi.json"</a>
            " (OpenAPI 3.1)."
        </p>
        {sections}
        <section>
            <h2 class="mb-4 text-2xl font-semibold text-slate-900">"Types"</h2>
            <div class="space-y-4">{schemas}</div>
        </section>
    }
}

fn method_colour(method: &str) -> &'static str {
    match method {
        "GET" => "bg-sky-100 text-sky-800",
        "POST" => "bg-emerald-100 text-emerald-800",
        "DELETE" => "bg-red-100 text-red-800",
        _ => "bg-amber-100 text-amber-800",
    }
}

/// A type name links to its entry under "Types".
fn type_link(kind: String) -> impl IntoView {
    let anchor = kind
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|word| word.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        .map(|name| format!("#type-{name}"));
    match anchor {
        Some(href) => {
            view! { <a class="font-mono text-amber-700 underline" href=href>{kind}</a> }.into_any()
        }
        None => view! { <span class="font-mono">{kind}</span> }.into_any(),
    }
}

#[component]
fn OperationCard(op: Operation) -> impl IntoView {
    let anchor = format!(
        "{}-{}",
        op.method.to_lowercase(),
        op.path.replace(['/', '{', '}'], "-")
    );
    let responses = op
        .responses
        .into_iter()
        .map(|r| {
            view! {
                <tr class="border-t border-slate-100">
                    <td class="py-1 pr-4 font-mono">{r.status}</td>
                    <td class="py-1 pr-4">{prose(r.description)}</td>
                    <td class="py-1">{r.body.map(type_link)}</td>
                </tr>
            }
        })
        .collect_view();
    let params = (!op.params.is_empty()).then(|| view! { <FieldTable fields=op.params /> });
    view! {
        <article id=anchor class="rounded-lg border border-slate-200 bg-white p-5 shadow-sm" data-testid="operation">
            <h3 class="flex flex-wrap items-center gap-3">
                <span class=format!("rounded px-2 py-0.5 font-mono text-xs font-bold {}", method_colour(&op.method))>{op.method.clone()}</span>
                <code class="min-w-0 break-all font-mono text-slate-900">{op.path.clone()}</code>
                <span class="text-slate-600">{op.summary}</span>
            </h3>
            {(!op.description.is_empty()).then(|| view! { <p class="mt-2 text-sm text-slate-600">{prose(op.description)}</p> })}
            <p class="mt-2 text-sm"><span class="text-slate-500">"Auth: "</span>{op.auth.join(" or ")}</p>
            {params}
            {op.body.map(|body| view! { <p class="mt-2 text-sm"><span class="text-slate-500">"Body: "</span>{type_link(body)}</p> })}
            // Its words break where they must, so it fits a phone without
            // scrolling (a box that scrolls must take the focus: 70 stops).
            <div class="overflow-x-auto">
                <table class="mt-3 w-full text-left text-sm wrap-anywhere">
                    <thead class="text-slate-500"><tr><th class="pr-4 font-normal">"Status"</th><th class="pr-4 font-normal">"Meaning"</th><th class="font-normal">"Body"</th></tr></thead>
                    <tbody>{responses}</tbody>
                </table>
            </div>
        </article>
    }
}

/// A description as the document writes it, with its `code` spans shown as
/// code rather than as backticks.
fn prose(text: String) -> impl IntoView {
    text.split('`')
        .enumerate()
        .map(|(at, part)| {
            let part = part.to_owned();
            if at % 2 == 1 {
                view! { <code class="rounded bg-slate-100 px-1 font-mono text-[0.9em] text-slate-800">{part}</code> }
                    .into_any()
            } else {
                part.into_any()
            }
        })
        .collect_view()
}

#[component]
fn SchemaCard(schema: SchemaDoc) -> impl IntoView {
    view! {
        <article id=format!("type-{}", schema.name) class="rounded-lg border border-slate-200 bg-white p-5 shadow-sm">
            <h3 class="font-mono text-lg font-semibold text-slate-900">{schema.name.clone()}</h3>
            {(!schema.description.is_empty()).then(|| view! { <p class="mt-1 text-sm text-slate-600">{prose(schema.description)}</p> })}
            <FieldTable fields=schema.fields />
        </article>
    }
}

#[component]
fn FieldTable(fields: Vec<Field>) -> impl IntoView {
    let rows = fields
        .into_iter()
        .map(|f| {
            view! {
                <tr class="border-t border-slate-100 align-top">
                    <td class="py-1 pr-4 font-mono">{f.name}{(!f.required).then_some("?")}</td>
                    <td class="py-1 pr-4">{type_link(f.kind)}</td>
                    <td class="py-1 text-slate-600">{prose(f.description)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="overflow-x-auto">
            <table class="mt-3 w-full text-left text-sm wrap-anywhere">
                <thead class="text-slate-500"><tr><th class="pr-4 font-normal">"Field"</th><th class="pr-4 font-normal">"Type"</th><th class="font-normal">"About"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}
