//! The usage export: a user's calls between two UTC dates as CSV, a row a
//! call, oldest first. Rows are read from the store a page at a time and
//! sent as they are written, so an export of any length holds neither a
//! database connection nor the whole list.

use std::borrow::Cow;

use axum::body::Bytes;
use chrono::{Datelike, Duration, NaiveDate};
use futures::Stream;

use super::service::DAYS;
use crate::{
    credits::format_credits,
    store::{ExportedCall, Store, StoreError},
};

/// Calls read from the store at a time.
const PAGE: i64 = 1_000;

/// The columns, in order. Times are UTC; `key` is the key's name and
/// `key_last_four` the end of its secret; `cost_credits` is `cost_micros`
/// (the exact charge, in millionths of a credit) as a decimal.
pub const COLUMNS: [&str; 14] = [
    "time_utc",
    "request_id",
    "key",
    "key_last_four",
    "model",
    "stream",
    "status",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_credits",
    "cost_micros",
    "latency_ms",
];

/// The days an export covers, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("`{field}` must be a date like 2026-12-31.")]
    NotADate { field: &'static str },
    #[error("`from` must not be after `to`.")]
    Reversed,
}

impl RangeError {
    /// The query parameter at fault.
    pub fn param(&self) -> &'static str {
        match self {
            Self::NotADate { field } => field,
            Self::Reversed => "from",
        }
    }
}

impl ExportRange {
    /// The range from the query's `from` and `to` (`YYYY-MM-DD`, UTC). Without
    /// `to`, it ends today; without `from`, it starts so as to cover the
    /// usage page's 30 days.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        today: NaiveDate,
    ) -> Result<Self, RangeError> {
        let date = |field: &'static str, text: Option<&str>| {
            text.map(str::trim)
                .filter(|text| !text.is_empty())
                .map(|text| {
                    NaiveDate::parse_from_str(text, "%Y-%m-%d")
                        .ok()
                        // Stored times are four-digit years compared as text.
                        .filter(|day| (1..=9998).contains(&day.year()))
                        .ok_or(RangeError::NotADate { field })
                })
                .transpose()
        };
        let to = date("to", to)?.unwrap_or(today);
        let from = match date("from", from)? {
            Some(from) => from,
            // Not before the first day a date may be.
            None => {
                (to - Duration::days(DAYS - 1)).max(NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or(to))
            }
        };
        if from > to {
            return Err(RangeError::Reversed);
        }
        Ok(Self { from, to })
    }

    /// The name a browser saves the file under.
    pub fn file_name(&self) -> String {
        format!("tollgate-usage-{}-to-{}.csv", self.from, self.to)
    }

    /// The name an admin's download of account `user_id` is saved under:
    /// several accounts' files do not share one name.
    pub fn file_name_of_user(&self, user_id: i64) -> String {
        format!(
            "tollgate-usage-user-{user_id}-{}-to-{}.csv",
            self.from, self.to
        )
    }

    /// The stored times the range runs from (included) and until (excluded).
    fn stored_bounds(&self) -> (String, String) {
        let midnight = |day: NaiveDate| format!("{day}T00:00:00.000Z");
        (midnight(self.from), midnight(self.to + Duration::days(1)))
    }
}

/// Where the export has got to.
enum Next {
    /// The header and the first page, read before the answer began.
    First(Vec<ExportedCall>),
    /// The page after the call with this time and id.
    After(String, i64),
    Done,
}

/// The user's calls in `range` as CSV. The first page is read here, so a
/// database that fails is an error answer rather than a cut download; the
/// rest is read as the stream is polled.
pub async fn calls_csv(
    store: Store,
    user_id: i64,
    range: ExportRange,
) -> Result<impl Stream<Item = Result<Bytes, StoreError>> + Send + 'static, StoreError> {
    let (from, until) = range.stored_bounds();
    let first = store
        .calls_between(user_id, (&from, &until), None, PAGE)
        .await?;
    Ok(futures::stream::try_unfold(
        Next::First(first),
        move |next| {
            let (store, from, until) = (store.clone(), from.clone(), until.clone());
            async move {
                let (calls, header) = match next {
                    Next::Done => return Ok(None),
                    Next::First(calls) => (calls, true),
                    Next::After(time, id) => {
                        let calls = store
                            .calls_between(user_id, (&from, &until), Some((&time, id)), PAGE)
                            .await?;
                        (calls, false)
                    }
                };
                if calls.is_empty() && !header {
                    return Ok(None);
                }
                let next = match calls.last() {
                    Some(last) if calls.len() as i64 == PAGE => {
                        Next::After(last.created_at.clone(), last.id)
                    }
                    _ => Next::Done,
                };
                Ok(Some((csv_page(&calls, header), next)))
            }
        },
    ))
}

/// The rows of `calls` as CSV, after the header when `header` is set.
fn csv_page(calls: &[ExportedCall], header: bool) -> Bytes {
    let mut out = csv::Writer::from_writer(Vec::with_capacity(calls.len() * 160));
    // Writing to memory fails only on a record of another length, which
    // these are not.
    if header {
        let _ = out.write_record(COLUMNS);
    }
    for call in calls {
        let cells = [
            Cow::Borrowed(call.created_at.as_str()),
            // Chosen by the caller (`x-request-id`), as key names are by users.
            inert(call.request_id.as_deref().unwrap_or_default()),
            inert(&call.key_name),
            Cow::Borrowed(call.key_last_four.as_deref().unwrap_or_default()),
            inert(&call.model),
            Cow::Borrowed(if call.stream { "true" } else { "false" }),
            Cow::Owned(call.status.to_string()),
            Cow::Borrowed(call.error_code.as_deref().unwrap_or_default()),
            Cow::Owned(call.prompt_tokens.to_string()),
            Cow::Owned(call.completion_tokens.to_string()),
            Cow::Owned((call.prompt_tokens + call.completion_tokens).to_string()),
            Cow::Owned(format_credits(call.cost_micros)),
            Cow::Owned(call.cost_micros.to_string()),
            Cow::Owned(call.latency_ms.to_string()),
        ];
        let _ = out.write_record(cells.iter().map(|cell| cell.as_bytes()));
    }
    Bytes::from(out.into_inner().unwrap_or_default())
}

/// A text cell a spreadsheet would run as a formula (one starting with `=`,
/// `+`, `-`, `@`, a tab or a carriage return), with a `'` before it, as
/// OWASP advises: key names and request ids are chosen by users.
fn inert(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::{ExportRange, RangeError, csv_page, inert};
    use crate::store::ExportedCall;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn a_range_defaults_to_the_usage_pages_thirty_days() {
        let today = day("2026-12-08");
        let range = ExportRange::parse(None, None, today).unwrap();
        assert_eq!((range.from, range.to), (day("2026-11-09"), today));
        let range = ExportRange::parse(None, Some("2026-01-31"), today).unwrap();
        assert_eq!(range.from, day("2026-01-02"));
        // Not before year 1, which the dates allowed start at.
        let range = ExportRange::parse(None, Some("0001-01-05"), today).unwrap();
        assert_eq!(range.from, day("0001-01-01"));
        let range = ExportRange::parse(Some(" 2026-12-08 "), Some(""), today).unwrap();
        assert_eq!((range.from, range.to), (today, today));
        assert_eq!(
            range.stored_bounds(),
            (
                "2026-12-08T00:00:00.000Z".to_owned(),
                "2026-12-09T00:00:00.000Z".to_owned()
            )
        );
        assert_eq!(
            range.file_name(),
            "tollgate-usage-2026-12-08-to-2026-12-08.csv"
        );
    }

    #[test]
    fn a_range_refuses_what_is_not_a_date_or_runs_backwards() {
        let today = day("2026-12-08");
        for bad in [
            "2026-13-01",
            "yesterday",
            "2026-12-8x",
            "+10000-01-01",
            "9999-12-31",
        ] {
            assert_eq!(
                ExportRange::parse(Some(bad), None, today),
                Err(RangeError::NotADate { field: "from" }),
                "{bad}"
            );
        }
        assert_eq!(
            ExportRange::parse(None, Some("soon"), today),
            Err(RangeError::NotADate { field: "to" })
        );
        assert_eq!(
            ExportRange::parse(Some("2026-12-09"), Some("2026-12-08"), today),
            Err(RangeError::Reversed)
        );
    }

    #[test]
    fn rows_are_quoted_and_formulas_kept_inert() {
        let call = ExportedCall {
            id: 1,
            created_at: "2026-12-08T01:02:03.004Z".into(),
            request_id: Some("-req-1".into()),
            key_name: "=HYPERLINK(\"x\"), \"ci\"".into(),
            key_last_four: Some("abcd".into()),
            model: "demo".into(),
            stream: true,
            status: 200,
            error_code: None,
            prompt_tokens: 12,
            completion_tokens: 30,
            cost_micros: 1_500_001,
            latency_ms: 9,
        };
        let text = String::from_utf8(csv_page(&[call], true).to_vec()).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                "time_utc,request_id,key,key_last_four,model,stream,status,error_code,prompt_tokens,completion_tokens,total_tokens,cost_credits,cost_micros,latency_ms"
            )
        );
        assert_eq!(
            lines.next(),
            Some(
                "2026-12-08T01:02:03.004Z,'-req-1,\"'=HYPERLINK(\"\"x\"\"), \"\"ci\"\"\",abcd,demo,true,200,,12,30,42,1.500001,1500001,9"
            )
        );
        assert_eq!(lines.next(), None);
        assert_eq!(inert("-1"), "'-1");
        assert_eq!(inert("my key"), "my key");
    }
}
