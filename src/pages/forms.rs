//! Form pieces every page uses: a labelled field that shows its own error and
//! keeps what was typed, and the alert above a form.

use leptos::prelude::*;

use crate::accounts::types::FormError;

/// The last error of a form's action, whether the form was submitted with
/// JavaScript or posted plainly (Leptos brings it back in the redirect URL).
pub type LastError = Signal<Option<FormError>>;

pub fn last_error<T>(
    value: impl Get<Value = Option<Result<T, FormError>>> + Send + Sync + 'static,
) -> LastError {
    Signal::derive(move || value.get().and_then(Result::err))
}

/// `false` in the page as served, `true` once its code has loaded (hydrated).
/// Controls that act only through that code are disabled until then: before,
/// a click does nothing, a form posts plainly and reloads the page, and what
/// was typed is replaced when the page's code takes the fields over.
pub fn hydrated() -> ReadSignal<bool> {
    let (ready, set_ready) = signal(false);
    Effect::new(move |_| set_ready.set(true));
    ready
}

/// Moves keyboard focus to the element with this id once the page has drawn
/// its latest change (the element may be new in it): a dialog that opened, or
/// back to what opened it. Nothing when there is no such element.
pub fn focus_by_id(id: impl Into<String>) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let id = id.into();
        request_animation_frame(move || {
            if let Some(element) = document()
                .get_element_by_id(&id)
                .and_then(|element| element.dyn_into::<web_sys::HtmlElement>().ok())
            {
                let _ = element.focus();
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = id.into();
}

/// The first element `selector` matches in the page, as one that can take
/// focus.
#[cfg(feature = "hydrate")]
fn focusable(selector: &str) -> Option<web_sys::HtmlElement> {
    use wasm_bindgen::JsCast;
    document()
        .query_selector(selector)
        .ok()
        .flatten()
        .and_then(|element| element.dyn_into::<web_sys::HtmlElement>().ok())
}

/// The selector of the first field marked invalid inside the element with id
/// `within`.
#[cfg(feature = "hydrate")]
fn first_invalid(within: &str) -> String {
    format!(r#"#{within} [aria-invalid="true"]"#)
}

/// After each refusal of the action whose result is `value`, moves focus to
/// the first field marked invalid inside the element with id `within` (its
/// form's section: another form's old errors stay marked), so a keyboard
/// user lands where the message is rather than on the button they pressed.
pub fn focus_first_invalid<T: Send + Sync + 'static>(
    value: impl Get<Value = Option<Result<T, FormError>>> + Send + Sync + 'static,
    within: &'static str,
) {
    Effect::watch(
        move || value.get().is_some_and(|result| result.is_err()),
        move |refused, _, _| {
            #[cfg(feature = "hydrate")]
            if *refused {
                request_animation_frame(move || {
                    if let Some(field) = focusable(&first_invalid(within)) {
                        let _ = field.focus();
                    }
                });
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = (refused, within);
        },
        false,
    );
}

/// Where focus goes on a page that draws itself again after each of its
/// actions (its data fetched anew): the button pressed is gone with the
/// drawing it was in, so focus would fall to the page's start. After a
/// refusal it goes to the first field marked invalid in the action's part of
/// the page, else to that part's heading; after a success, to the heading.
#[derive(Clone, Copy)]
pub struct Refocus(StoredValue<Option<(&'static str, bool)>>);

impl Default for Refocus {
    fn default() -> Self {
        Self(StoredValue::new(None))
    }
}

impl Refocus {
    /// After each answer of the action whose result is `value` (each draws
    /// the page again but a refusal because the session ended, see
    /// [`completions`]), focus goes into the element with id `part` once the
    /// page has drawn again.
    pub fn after<T: Send + Sync + 'static>(
        self,
        value: impl Get<Value = Option<Result<T, FormError>>> + Send + Sync + 'static,
        part: &'static str,
    ) {
        Effect::watch(
            move || match value.get() {
                Some(Ok(_)) => Some(true),
                Some(Err(e)) if !e.signed_out => Some(false),
                _ => None,
            },
            move |answered, _, _| {
                if let Some(succeeded) = answered {
                    self.0.set_value(Some((part, *succeeded)));
                }
            },
            false,
        );
    }

    /// As [`Self::after`] for an action whose success alone draws the page
    /// again: after a refusal, the page as it is gets the focus moved.
    pub fn after_success<T: Send + Sync + 'static>(
        self,
        value: impl Get<Value = Option<Result<T, FormError>>> + Copy + Send + Sync + 'static,
        part: &'static str,
    ) {
        Effect::watch(
            move || matches!(value.get(), Some(Ok(_))),
            move |succeeded, _, _| {
                if *succeeded {
                    self.0.set_value(Some((part, true)));
                }
            },
            false,
        );
        focus_first_invalid(value, part);
    }

    /// Called where the page draws its data: moves focus as the last
    /// answer asks, once.
    pub fn drawn(self) {
        let Some((part, succeeded)) = self.0.try_update_value(Option::take).flatten() else {
            return;
        };
        #[cfg(feature = "hydrate")]
        request_animation_frame(move || {
            let invalid = (!succeeded)
                .then(|| focusable(&first_invalid(part)))
                .flatten();
            if let Some(field) = invalid {
                let _ = field.focus();
            } else if let Some(heading) = focusable(&format!("#{part} h2")) {
                // A heading takes focus only from code.
                let _ = heading.set_attribute("tabindex", "-1");
                let _ = heading.focus();
            }
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = (part, succeeded);
    }
}

/// What a form posted without JavaScript did, as its server function said
/// on the way back (`?done=…`, see `server_ctx::done_without_script`).
pub fn done_without_script() -> Option<String> {
    leptos_router::hooks::use_query_map().with_untracked(|query| query.get("done"))
}

/// Counts the completions of the action whose result is `value`, but for a
/// refusal because the session ended. A page fetches its data again on this
/// count: fetched again then, the data's own refusal replaced the page, and
/// what was typed in it.
pub fn completions<T: Send + Sync + 'static>(
    value: impl Get<Value = Option<Result<T, FormError>>> + Send + Sync + 'static,
) -> ReadSignal<u32> {
    let (count, set_count) = signal(0u32);
    Effect::new(move |_| {
        if let Some(result) = value.get()
            && !matches!(&result, Err(e) if e.signed_out)
        {
            set_count.update(|n| *n += 1);
        }
    });
    count
}

/// The outcome of whichever of a page's actions finished last: `Ok` with its
/// success message, `Err` with its refusal. Read action by action, a banner
/// would go on showing an earlier success beside a later one, or a refusal.
pub type LastOutcome = RwSignal<Option<Result<&'static str, FormError>>>;

/// A stored time (`2026-12-07T13:49:57.235Z`) as the pages show times:
/// `2026-12-07 13:49:57.235`, in UTC as every page's times are.
pub fn shown_time(stored: &str) -> String {
    stored.replace('T', " ").trim_end_matches('Z').to_owned()
}

/// Makes `outcome` follow the action whose result is `value` each time it
/// finishes, with `success` as its message.
pub fn record_outcome<T: Send + Sync + 'static>(
    outcome: LastOutcome,
    value: impl Get<Value = Option<Result<T, FormError>>> + Send + Sync + 'static,
    success: &'static str,
) {
    record_outcome_by(outcome, value, move |_| success);
}

/// As [`record_outcome`], with the success message chosen by what the
/// action answered (a state it set, say).
pub fn record_outcome_by<T: Send + Sync + 'static>(
    outcome: LastOutcome,
    value: impl Get<Value = Option<Result<T, FormError>>> + Send + Sync + 'static,
    success: impl Fn(&T) -> &'static str + Send + Sync + 'static,
) {
    Effect::watch(
        move || {
            value
                .get()
                .map(|result| result.map(|answer| success(&answer)))
        },
        move |finished, _, _| {
            if let Some(finished) = finished {
                outcome.set(Some(finished.clone()));
            }
        },
        false,
    );
}

#[component]
pub fn FormAlert(error: LastError) -> impl IntoView {
    move || {
        // A throttled attempt's message says how long to wait.
        error.get().map(|e| {
            let log_in = e.signed_out.then(|| {
                view! {
                    " "
                    <a href=super::nav::login_and_back() target="_blank" rel="noopener" class="font-medium underline">
                        "Log in in a new tab"
                    </a>
                    ", then send the form again from this page."
                }
            });
            view! {
                <div class="mb-4 rounded-md border border-red-200 bg-red-50 p-3 text-sm text-red-800" role="alert">
                    {e.message}
                    {log_in}
                </div>
            }
        })
    }
}

/// The success message of a page's last action, in a live region that is on
/// the page before its message: one added together with its text is often
/// not read out.
#[component]
pub fn FormStatus(#[prop(into)] message: Signal<Option<&'static str>>) -> impl IntoView {
    view! {
        <div role="status">
            {move || message.get().map(|said| view! {
                <p class="mb-4 rounded-md border border-emerald-200 bg-emerald-50 p-3 text-sm text-emerald-800">{said}</p>
            })}
        </div>
    }
}

/// A labelled input. `keep` refills the typed value after a refused submission
/// (never set it for passwords).
///
/// Each time the form's action answers, the field shows `value` again: the
/// kept value after a refusal, else its initial value (so a password or an
/// amount does not stay behind). It is set then and not through a `value`
/// property binding, because hydration sets properties and would wipe what
/// someone typed before the page's code had loaded; the `value` attribute
/// fills the field for the first render.
#[component]
pub fn Field(
    label: &'static str,
    name: &'static str,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional)] autocomplete: &'static str,
    #[prop(optional, into)] hint: String,
    #[prop(optional)] keep: bool,
    #[prop(optional, into)] initial: Option<String>,
    /// The field may be left empty.
    #[prop(optional)]
    optional: bool,
    #[prop(optional, into)] placeholder: Option<String>,
    error: LastError,
) -> impl IntoView {
    let id = format!("field-{name}");
    let error_id = format!("{id}-error");
    let message = move || error.get().and_then(|e| e.field_error(name));
    let value = move || {
        keep.then(|| error.get().and_then(|e| e.value(name)))
            .flatten()
            .or_else(|| initial.clone())
            .unwrap_or_default()
    };
    // The hint (the password rules) is read with the field, then any error.
    let hint_id = format!("{id}-hint");
    let described_by = if hint.is_empty() {
        error_id.clone()
    } else {
        format!("{hint_id} {error_id}")
    };
    let input = NodeRef::<leptos::html::Input>::new();
    // On changes only: not at hydration. A refusal of the whole form that
    // kept nothing (a session that ended, a throttled attempt) leaves what
    // was typed in a field that keeps its value: it was not refused, and
    // filling the initial value back in put a plan's defaults in place of
    // the limits an admin had typed.
    Effect::watch(
        move || error.track(),
        {
            let value = value.clone();
            move |_, _, _| {
                let kept_nothing = error.with_untracked(|e| {
                    e.as_ref()
                        .is_some_and(|e| e.fields.is_empty() && e.values.is_empty())
                });
                if keep && kept_nothing {
                    return;
                }
                // Untracked: the watch's callback is outside any tracking
                // (a tracked read here logged a warning on every submit).
                if let Some(field) = input.get_untracked() {
                    field.set_value(&untrack(&value));
                }
            }
        },
        false,
    );
    // Built after the page hydrated: the page's data came again and kept the
    // input, which once typed in no longer follows its `value` attribute
    // (saved limits went on showing the values before), or a client-side
    // navigation. It shows `initial` once mounted. Not at hydration, which
    // keeps what was typed before the page's code loaded.
    #[cfg(feature = "hydrate")]
    if document()
        .document_element()
        .is_some_and(|root| root.has_attribute("data-hydrated"))
    {
        let value = value.clone();
        Effect::new(move |_| {
            if let Some(field) = input.get() {
                field.set_value(&untrack(&value));
            }
        });
    }
    view! {
        <div class="mb-4">
            <label for=id.clone() class="mb-1 block text-sm font-medium text-slate-700">{label}</label>
            <input
                node_ref=input
                id=id
                name=name
                type=kind
                autocomplete=autocomplete
                required=!optional
                placeholder=placeholder
                value=value
                aria-invalid=move || message().is_some().to_string()
                aria-describedby=described_by
                class="block w-full rounded-md border border-slate-300 px-3 py-2 text-sm shadow-sm focus:border-slate-500 focus:outline-none focus:ring-1 focus:ring-slate-500 aria-[invalid=true]:border-red-400"
            />
            {(!hint.is_empty()).then(|| view! { <p id=hint_id class="mt-1 text-xs text-slate-500">{hint}</p> })}
            <p id=error_id class="mt-1 text-sm text-red-700">{message}</p>
        </div>
    }
}

// The focus ring stands off the button: the browser's own, dark on a dark
// button, hardly shows.
pub const BUTTON: &str = "inline-flex items-center justify-center rounded-md bg-slate-900 px-4 py-2 text-sm font-medium text-white hover:bg-slate-700 disabled:opacity-60 aria-disabled:opacity-60 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-sky-600";
pub const DANGER_BUTTON: &str = "inline-flex items-center justify-center rounded-md bg-red-700 px-4 py-2 text-sm font-medium text-white hover:bg-red-600 disabled:opacity-60 aria-disabled:opacity-60 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-sky-600";

/// A form's submit button that, while `busy`, says so (`aria-disabled`) and
/// ignores presses, rather than being disabled: a button disabled while it
/// has the keyboard's focus drops it to the start of the page.
#[component]
pub fn Submit(
    class: &'static str,
    #[prop(into)] busy: Signal<bool>,
    #[prop(optional)] id: Option<&'static str>,
    children: Children,
) -> impl IntoView {
    view! {
        <button type="submit" class=class id=id
            aria-disabled=move || busy.get().then_some("true")
            on:click=move |ev| {
                if busy.get_untracked() {
                    ev.prevent_default();
                }
            }>
            {children()}
        </button>
    }
}

/// A card; one wider than the screen (a table on a phone) scrolls inside it
/// rather than widening the page.
pub const CARD: &str =
    "min-w-0 overflow-x-auto rounded-lg border border-slate-200 bg-white p-6 shadow-sm";

/// A wide table's box: it scrolls sideways on a narrow screen, and as a
/// named, focusable region a keyboard can scroll it and a screen reader says
/// what it holds. A shadow marks the edge where columns are out of sight
/// (`scroll-shadows` in the style sheet), and on a phone a line says so: the
/// keys table hid its Revoke and Rotate buttons there without a sign.
#[component]
pub fn ScrollRegion(label: &'static str, children: Children) -> impl IntoView {
    view! {
        <p class="mb-1 text-xs text-slate-500 sm:hidden" aria-hidden="true">"Scroll the table sideways for more columns."</p>
        <div class="scroll-shadows overflow-x-auto" tabindex="0" role="region" aria-label=label>
            {children()}
        </div>
    }
}

/// A secret shown once, with a button that copies it and says whether the
/// browser let it.
#[component]
pub fn SecretToCopy(secret: String, testid: &'static str) -> impl IntoView {
    // Whether the browser took the secret: `None` until asked.
    let copied = RwSignal::new(None::<bool>);
    let hydrated = hydrated();
    let to_copy = secret.clone();
    view! {
        <div class="mt-1 flex items-center gap-2">
            // Wrapped, not scrolled: shown once, it is read whole on a phone too.
            <code class="min-w-0 flex-1 break-all rounded bg-white px-3 py-2 text-sm" data-testid=testid>{secret}</code>
            <button
                class="rounded-md border border-slate-300 bg-white px-3 py-2 text-sm hover:bg-slate-100 disabled:opacity-50"
                disabled=move || !hydrated.get()
                on:click=move |_| copy_to_clipboard(&to_copy, copied)
            >
                {move || if copied.get() == Some(true) { "Copied" } else { "Copy" }}
            </button>
        </div>
        <div>
            {move || (copied.get() == Some(false)).then(|| view! {
                <p class="mt-1 text-sm text-red-700" role="alert">
                    "The browser did not let Tollgate copy it. Select it and copy it yourself."
                </p>
            })}
        </div>
    }
}

/// Copies `text` and sets `copied` to whether the browser took it: only a
/// secure context (https, localhost) has a clipboard, and it may refuse.
fn copy_to_clipboard(text: &str, copied: RwSignal<Option<bool>>) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsValue;
        let navigator = window().navigator();
        let has_clipboard = js_sys::Reflect::get(&navigator, &JsValue::from_str("clipboard"))
            .is_ok_and(|clipboard| !clipboard.is_undefined());
        if !has_clipboard {
            copied.set(Some(false));
            return;
        }
        let written = navigator.clipboard().write_text(text);
        leptos::task::spawn_local(async move {
            let took = wasm_bindgen_futures::JsFuture::from(written).await.is_ok();
            copied.try_set(Some(took));
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (text, copied);
}

/// A note for browsers that run no scripts, on pages whose controls need
/// them (they stay disabled). Given as inner HTML: with scripts on, a
/// `<noscript>`'s content is text, which hydration must not walk.
#[component]
pub fn NeedsScript(what: &'static str) -> impl IntoView {
    let note = format!(
        r#"<p class="mb-4 rounded-md border border-amber-300 bg-amber-50 p-3 text-sm text-amber-900">{what} needs JavaScript, which this browser is not running. Turn it on for this site to use it.</p>"#
    );
    view! { <noscript inner_html=note></noscript> }
}

/// A form's submit button that asks `question` first, if there is one. The
/// question opens in the page beside the button: its `yes` button submits the
/// form, Cancel (or Escape) closes it. Not `window.confirm`, which a browser
/// told to stop the page's dialogs answers "no" at once, so the button would
/// silently do nothing. Asking needs the page's code, so a button with a
/// question stays disabled until that code has loaded: a click before, or in
/// a browser that cannot run it, would post unasked.
#[component]
pub fn SubmitAskingFirst(
    question: Option<String>,
    class: &'static str,
    #[prop(optional)] busy: Option<Signal<bool>>,
    /// Its name when the text alone does not say what it acts on (one
    /// "Revoke" a row), and its question's ("Confirm: …"): give it with a
    /// question.
    #[prop(optional, into)]
    label: Option<String>,
    /// The text of the button that answers the question yes ("Yes, revoke"),
    /// another name than the button that asks.
    #[prop(optional, into)]
    yes: Option<String>,
    children: Children,
) -> impl IntoView {
    let ready = hydrated();
    let needs_code = question.is_some();
    let is_busy = move || busy.is_some_and(|busy| busy.get());
    // Busy, a button ignores presses rather than being disabled (see `Submit`).
    let busy_now = move || busy.is_some_and(|busy| busy.get_untracked());
    let asking = RwSignal::new(false);
    let opener = NodeRef::<leptos::html::Button>::new();
    let open_or_submit = move |ev: leptos::ev::MouseEvent| {
        if busy_now() {
            ev.prevent_default();
        } else if needs_code {
            asking.update(|open| *open = !*open);
        }
    };
    let bar = question.map(|question| {
        // The question's name is the button's: what it asks about.
        let name = label.clone().unwrap_or_else(|| question.clone());
        let yes = yes.unwrap_or_else(|| "Yes".to_owned());
        view! { <ConfirmBar asking opener name question yes busy submits=true on_yes=None /> }
    });
    view! {
        // With a question it only opens it, so a form's Enter cannot post
        // unasked through it.
        <button type=if needs_code { "button" } else { "submit" } node_ref=opener
            class=class aria-label=label
            aria-disabled=move || is_busy().then_some("true")
            aria-expanded=move || needs_code.then(|| asking.get().to_string())
            disabled=move || needs_code && !ready.get()
            on:click=open_or_submit>
            {children()}
        </button>
        {bar}
    }
}

/// A question asked in the page, open while `asking`: its `yes` button either
/// submits the form it is in (`submits`) or calls `on_yes`, and Cancel or
/// Escape closes it, focus going back to `opener`, the button that opened it.
/// Focus moves to Cancel when it opens, the safe answer.
#[component]
pub fn ConfirmBar(
    asking: RwSignal<bool>,
    opener: NodeRef<leptos::html::Button>,
    /// What it asks about, for its accessible name ("Confirm: …").
    #[prop(into)]
    name: String,
    question: String,
    yes: String,
    busy: Option<Signal<bool>>,
    submits: bool,
    on_yes: Option<Callback<()>>,
) -> impl IntoView {
    let cancel_button = NodeRef::<leptos::html::Button>::new();
    Effect::new(move || {
        if asking.get()
            && let Some(button) = cancel_button.get()
        {
            let _ = button.focus();
        }
    });
    let close = move || {
        asking.set(false);
        if let Some(button) = opener.get_untracked() {
            let _ = button.focus();
        }
    };
    let is_busy = move || busy.is_some_and(|busy| busy.get());
    let name = format!("Confirm: {name}");
    // Several may be open on one page. Drawn only in the browser (it starts
    // closed), so the server's count never meets the browser's.
    static BARS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let question_id = format!(
        "confirm-question-{}",
        BARS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    move || {
        asking.get().then(|| {
            view! {
                <div role="alertdialog" aria-label=name.clone() aria-describedby=question_id.clone()
                    class="mt-2 flex flex-wrap items-center gap-2 rounded-md border border-red-200 bg-red-50 p-2 text-left text-sm text-red-800"
                    on:keydown=move |ev| if ev.key() == "Escape" { close() }>
                    <span id=question_id.clone() class="flex-1">{question.clone()}</span>
                    <button type=if submits { "submit" } else { "button" }
                        class="rounded-md bg-red-700 px-3 py-1 text-white aria-disabled:opacity-60"
                        aria-disabled=move || is_busy().then_some("true")
                        on:click=move |ev| {
                            // Busy, it ignores presses (a second would be made).
                            if busy.is_some_and(|busy| busy.get_untracked()) {
                                ev.prevent_default();
                                return;
                            }
                            if let Some(on_yes) = on_yes {
                                on_yes.run(());
                            }
                            // Closed after the form has taken the press (gone
                            // at once, the button would post nothing), focus
                            // going back to the button that asked.
                            request_animation_frame(move || {
                                asking.set(false);
                                if let Some(button) = opener.get_untracked() {
                                    let _ = button.focus();
                                }
                            });
                        }>
                        {yes.clone()}
                    </button>
                    <button type="button" node_ref=cancel_button
                        class="rounded-md border border-slate-300 bg-white px-3 py-1 text-slate-700"
                        on:click=move |_| close()>
                        "Cancel"
                    </button>
                </div>
            }
        })
    }
}
