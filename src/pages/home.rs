//! The home page: what Tollgate is, how to get a key, and a live status check.

use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

/// What the home page shows about the running service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub version: String,
    pub public_url: String,
    pub database_ready: bool,
    /// The model the code samples call: the table's first.
    pub sample_model: String,
}

#[server(endpoint = "status")]
pub async fn get_service_status() -> Result<ServiceStatus, ServerFnError> {
    let state = use_context::<crate::startup::AppState>()
        .ok_or_else(|| ServerFnError::new("application state is missing"))?;
    Ok(ServiceStatus {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        public_url: state.public_url.to_string(),
        database_ready: state.store.ping().await.is_ok(),
        sample_model: state.gateway.models.default_model().name.clone(),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sample {
    Curl,
    Python,
    JavaScript,
}

impl Sample {
    const ALL: [Sample; 3] = [Sample::Curl, Sample::Python, Sample::JavaScript];

    fn label(self) -> &'static str {
        match self {
            Sample::Curl => "curl",
            Sample::Python => "Python",
            Sample::JavaScript => "JavaScript",
        }
    }

    /// The sample calling `model` at `base_url`.
    fn code(self, base_url: &str, model: &str) -> String {
        // A JSON string is a Python and a JavaScript string literal too.
        let literal = serde_json::to_string(model).unwrap_or_default();
        match self {
            Sample::Curl => curl_sample(base_url, model),
            Sample::Python => format!(
                "import os\nfrom openai import OpenAI\n\n\
                 client = OpenAI(base_url=\"{base_url}/v1\", api_key=os.environ[\"TOLLGATE_KEY\"])\n\
                 reply = client.chat.completions.create(\n    \
                 model={literal},\n    \
                 messages=[{{\"role\": \"user\", \"content\": \"Hello!\"}}],\n)\n\
                 print(reply.choices[0].message.content)"
            ),
            Sample::JavaScript => format!(
                "import OpenAI from \"openai\";\n\n\
                 const client = new OpenAI({{ baseURL: \"{base_url}/v1\", apiKey: process.env.TOLLGATE_KEY }});\n\
                 const reply = await client.chat.completions.create({{\n  \
                 model: {literal},\n  \
                 messages: [{{ role: \"user\", content: \"Hello!\" }}],\n}});\n\
                 console.log(reply.choices[0].message.content);"
            ),
        }
    }
}

/// A curl call of the chat API at `base_url` naming `model`.
pub fn curl_sample(base_url: &str, model: &str) -> String {
    // The body goes in single quotes: one inside the name ends and reopens them.
    let model = serde_json::to_string(model)
        .unwrap_or_default()
        .replace('\'', r"'\''");
    format!(
        "curl {base_url}/v1/chat/completions \\\n  \
         -H \"Authorization: Bearer $TOLLGATE_KEY\" \\\n  \
         -H \"Content-Type: application/json\" \\\n  \
         -d '{{\"model\": {model}, \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}'"
    )
}

#[component]
pub fn HomePage() -> impl IntoView {
    let status = Resource::new(|| (), |_| get_service_status());
    // Where deleting an account lands.
    let query = leptos_router::hooks::use_query_map();
    let deleted = move || query.read().get("account").as_deref() == Some("deleted");

    view! {
        <Title text="" />
        {move || deleted().then(|| view! {
            <div role="status" class="mt-6 rounded-md border border-emerald-200 bg-emerald-50 p-3 text-sm text-emerald-800">
                "Your account was deleted: your email, name and password are gone, and its keys no longer work."
            </div>
        })}
        <section class="py-6">
            <h1 class="text-4xl font-bold tracking-tight text-slate-900">
                "One gateway in front of your language models"
            </h1>
            <p class="mt-4 max-w-3xl text-lg text-slate-600">
                "Tollgate decides who may call a model, how often, and at what cost. "
                "Callers use the OpenAI API they already know with a Tollgate key; "
                "you keep the upstream keys, the rate limits and an exact ledger of credits."
            </p>
        </section>

        <section class="mt-6 grid gap-4 sm:grid-cols-3" aria-labelledby="features-title">
            <h2 id="features-title" class="sr-only">"What Tollgate does"</h2>
            <Feature title="Keys and plans">
                "Self-service API keys, shown once and stored only as a keyed hash, on plans with per-minute and daily request limits."
            </Feature>
            <Feature title="Limits that hold">
                "Per-minute throttles in memory, daily limits that survive restarts, and clear 429s with Retry-After."
            </Feature>
            <Feature title="Exact credits">
                "Integer micro-credits: the worst case is reserved before the call and settled at the real token count."
            </Feature>
        </section>

        <section id="quick-start" class="mt-12">
            <h2 class="text-2xl font-semibold text-slate-900">"How to get a key"</h2>
            <ol class="mt-4 list-decimal space-y-2 pl-6 text-slate-700">
                <li>
                    <a href="/register" class="font-medium text-slate-900 underline">"Create an account"</a>
                    " or "
                    <a href="/login" class="font-medium text-slate-900 underline">"log in"</a>
                    "."
                </li>
                <li>"Pick a rate-limit plan."</li>
                <li>"Create an API key. It is shown once: copy it somewhere safe."</li>
                <li>"Call the OpenAI-compatible API with it, from any OpenAI SDK or plain HTTP."</li>
            </ol>
        </section>

        <Transition fallback=|| view! { <p class="mt-8 text-slate-500">"Checking the service…"</p> }>
            {move || Suspend::new(async move {
                match status.await {
                    Ok(info) => view! {
                        <Samples base_url=info.public_url.clone() model=info.sample_model.clone() />
                        <StatusCard info />
                    }.into_any(),
                    Err(error) => view! {
                        <p class="mt-8 rounded-md bg-red-50 p-4 text-red-800" role="alert">
                            "The service did not answer the status check: " {error.to_string()}
                        </p>
                    }.into_any(),
                }
            })}
        </Transition>
        <button
            class="mt-3 rounded-md border border-slate-300 bg-white px-3 py-1.5 text-sm hover:bg-slate-100"
            on:click=move |_| status.refetch()
        >
            "Check again"
        </button>
    }
}

#[component]
fn Feature(title: &'static str, children: Children) -> impl IntoView {
    view! {
        <div class="rounded-lg border border-slate-200 bg-white p-5 shadow-sm">
            <h3 class="font-semibold text-slate-900">{title}</h3>
            <p class="mt-2 text-sm text-slate-600">{children()}</p>
        </div>
    }
}

#[component]
fn Samples(base_url: String, model: String) -> impl IntoView {
    let selected = RwSignal::new(Sample::Curl);
    let code = move || selected.get().code(&base_url, &model);
    let tab_id = |sample: Sample| format!("sample-tab-{}", sample.label());
    // Tabs as the ARIA pattern has them: one stop in the Tab order (the
    // chosen one), the arrow keys, Home and End move between them.
    let step = move |ev: leptos::ev::KeyboardEvent| {
        let at = Sample::ALL
            .iter()
            .position(|s| *s == selected.get_untracked())
            .unwrap_or(0);
        let last = Sample::ALL.len() - 1;
        let to = match ev.key().as_str() {
            "ArrowRight" => {
                if at == last {
                    0
                } else {
                    at + 1
                }
            }
            "ArrowLeft" => {
                if at == 0 {
                    last
                } else {
                    at - 1
                }
            }
            "Home" => 0,
            "End" => last,
            _ => return,
        };
        ev.prevent_default();
        selected.set(Sample::ALL[to]);
        super::forms::focus_by_id(tab_id(Sample::ALL[to]));
    };

    view! {
        <div class="mt-8 overflow-hidden rounded-lg border border-slate-200 bg-white shadow-sm">
            <div class="flex gap-1 border-b border-slate-200 bg-slate-100 px-2 pt-2" role="tablist" aria-label="Code samples"
                on:keydown=step>
                {Sample::ALL
                    .into_iter()
                    .map(|sample| {
                        let is_selected = move || selected.get() == sample;
                        view! {
                            <button
                                role="tab"
                                id=tab_id(sample)
                                aria-controls="sample-panel"
                                tabindex=move || if is_selected() { "0" } else { "-1" }
                                aria-selected=move || is_selected().to_string()
                                class=move || {
                                    if is_selected() {
                                        "rounded-t-md bg-white px-3 py-1.5 text-sm font-medium text-slate-900"
                                    } else {
                                        "rounded-t-md px-3 py-1.5 text-sm text-slate-600 hover:text-slate-900"
                                    }
                                }
                                on:click=move |_| selected.set(sample)
                            >
                                {sample.label()}
                            </button>
                        }
                    })
                    .collect_view()}
            </div>
            <pre id="sample-panel" class="overflow-x-auto bg-slate-900 p-4 text-sm text-slate-100" role="tabpanel"
                tabindex="0" aria-labelledby=move || tab_id(selected.get())>
                <code data-testid="sample-code">{code}</code>
            </pre>
        </div>
    }
}

#[component]
fn StatusCard(info: ServiceStatus) -> impl IntoView {
    let (dot, label) = if info.database_ready {
        ("bg-emerald-500", "Ready")
    } else {
        ("bg-red-500", "Database unavailable")
    };
    view! {
        <div class="mt-8 flex items-center gap-3 rounded-lg border border-slate-200 bg-white p-4 text-sm shadow-sm" data-testid="status">
            <span class=format!("inline-block h-2.5 w-2.5 rounded-full {dot}") aria-hidden="true"></span>
            <span class="font-medium">{label}</span>
            <span class="text-slate-500">"version " {info.version}</span>
            <span class="text-slate-500">"API base URL " <code class="break-all">{info.public_url}"/v1"</code></span>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::{Sample, curl_sample};

    #[test]
    fn samples_name_the_model_as_a_string_each_language_reads_back() {
        let curl = curl_sample("http://h", "team's \"best\"");
        // Shell: the single quote ends the quoted body, is escaped, reopens it.
        assert!(
            curl.contains(r#"{"model": "team'\''s \"best\"", "messages""#),
            "{curl}"
        );
        // Quotes and a backslash are escaped as both languages read them.
        let python = Sample::Python.code("http://h", r#"team's "best"\x"#);
        assert!(
            python.contains(r#"model="team's \"best\"\\x","#),
            "{python}"
        );
        let js = Sample::JavaScript.code("http://h", r#"a/b "c"\"#);
        assert!(js.contains(r#"model: "a/b \"c\"\\","#), "{js}");
    }
}
