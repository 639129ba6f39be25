//! Listing the conversations of an interval: analytics details jobs for what the data lake
//! holds, the synchronous details query for what lies after its availability date, and an
//! explicit "not discoverable" item for a part neither can reach.

use chrono::{DateTime, Duration as ChronoDuration, SecondsFormat, Utc};
use http::Method;
use serde_json::{Value, json};

use crate::carry::{Carried, SkipCheck, Verdict, first_page};
use crate::client::{AnalyticsMode, GenesysClient};
use crate::discovery::path_segment;
use crate::discovery::{
    Collector, Discovered, DiscoveryQuery, UndiscoverableSpan, Work, parse_time, split_interval,
};
use crate::error::{Error, Result};
use crate::models::{AsyncJobResults, ConversationQueryResponse, DataAvailability};

/// How far back the synchronous details query reaches ("interval starts up to 35 days back").
const SYNC_REACH: ChronoDuration = ChronoDuration::days(35);
/// Kept clear of the 35-day edge, so a query built now is not refused a moment later.
const SYNC_MARGIN: ChronoDuration = ChronoDuration::minutes(10);
/// Half the width of a query across a UTC midnight ([`GenesysClient::probe_earlier_starts`]).
const PROBE: ChronoDuration = ChronoDuration::seconds(1);
/// When the availability endpoint gives no date: the documented worst-case lag.
const DEFAULT_LAKE_LAG: ChronoDuration = ChronoDuration::hours(48);
/// `pageSize` of a details job's results pages (the documented maximum).
const JOB_PAGE_SIZE: u32 = 1000;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn or_filter(dimension: &str, values: &[String]) -> Option<Value> {
    (!values.is_empty()).then(|| {
        json!({"type": "or", "predicates": values.iter().map(|v| json!({"type": "dimension", "dimension": dimension, "operator": "matches", "value": v})).collect::<Vec<_>>()})
    })
}

fn gap(start: DateTime<Utc>, end: DateTime<Utc>, reason: String) -> Work {
    Work::Item(Box::new(Discovered::NotDiscoverable(UndiscoverableSpan {
        start,
        end,
        reason,
    })))
}

/// Pushes the two halves of `[from, e)` to be read in turn (first half on top), unless the
/// piece is too short to halve (2 minutes); returns whether it did.
fn halve(
    stack: &mut Vec<(DateTime<Utc>, DateTime<Utc>)>,
    from: DateTime<Utc>,
    e: DateTime<Utc>,
) -> bool {
    if e - from <= ChronoDuration::minutes(2) {
        return false;
    }
    let mid = from + (e - from) / 2;
    stack.push((mid, e));
    stack.push((from, mid));
    true
}

impl GenesysClient {
    /// Lists the conversations of `q` into `out`: analytics jobs up to the data lake's
    /// availability date (when the interval reaches back past the details query's 35 days, or
    /// jobs are forced), the details query after it, and a not-discoverable item for any part
    /// neither reaches. Returns false when the consumer has gone.
    pub(crate) async fn list_conversations(
        &self,
        q: &DiscoveryQuery,
        out: &mut Collector<'_>,
    ) -> Result<bool> {
        // The source's clock when it is behind ours: what it has not reached is not listed yet.
        // A fresh client learns it from the token answer (no extra call) before judging what
        // lies in the future.
        if self.source_now().is_none() {
            self.tokens().token().await?;
        }
        let now = self.now();
        let sync_floor = now - SYNC_REACH + SYNC_MARGIN;
        let use_jobs = match self.config().analytics {
            AnalyticsMode::Query => false,
            AnalyticsMode::Jobs => true,
            // Jobs list by activity, not by start day: they also find what started long before
            // the interval, where the query's midnight probes could not reach.
            AnalyticsMode::Auto => q.start - q.earlier_starts < sync_floor,
        };
        if q.end > now {
            let from = now.max(q.start);
            let reason = format!(
                "still in the future when discovery ran ({}): conversations may yet start there",
                rfc3339(now)
            );
            if !out.send(gap(from, q.end, reason)).await {
                return Ok(false);
            }
        }
        let mut covered_to = q.start;
        if use_jobs {
            let lake = self
                .data_availability()
                .await?
                .unwrap_or(now - DEFAULT_LAKE_LAG);
            let job_end = q.end.min(lake);
            if job_end > q.start {
                let held_to = self.job_into(q, q.start, job_end, out).await?;
                let Some(held_to) = held_to else {
                    return Ok(false);
                };
                covered_to = held_to.max(q.start);
            }
        }
        if covered_to >= q.end {
            return Ok(true);
        }
        if covered_to < sync_floor {
            let end = sync_floor.min(q.end);
            let reason = if use_jobs {
                format!(
                    "the analytics data lake holds data up to {}, and the details query reaches back only 35 days (to {})",
                    rfc3339(covered_to),
                    rfc3339(sync_floor)
                )
            } else {
                format!(
                    "older than the details query's 35-day reach (it reaches back to {}), and analytics jobs are off (--analytics query)",
                    rfc3339(sync_floor)
                )
            };
            if !out.send(gap(covered_to, end, reason)).await {
                return Ok(false);
            }
            covered_to = end;
            if covered_to >= q.end {
                return Ok(true);
            }
        }
        // Conversations still going on at `covered_to` (the lake holds finished ones only, or
        // the interval starts there) that started on an earlier UTC day.
        if !self
            .probe_earlier_starts(q, covered_to, sync_floor, out)
            .await?
        {
            return Ok(false);
        }
        self.query_into(q, covered_to, q.end, out).await
    }

    /// The details query returns conversations "that started on a day touched by the
    /// interval": one active at `at` that started on an earlier UTC day is in no query whose
    /// interval starts at `at`. Such a conversation was active across every UTC midnight since
    /// its start, so one two-second query across each midnight before `at`, back to
    /// `q.earlier_starts`, finds it (the collector keeps only what is active in the interval).
    /// Midnights past the query's 35-day reach are not probed (jobs cover those runs). Returns
    /// false when the consumer has gone.
    async fn probe_earlier_starts(
        &self,
        q: &DiscoveryQuery,
        at: DateTime<Utc>,
        sync_floor: DateTime<Utc>,
        out: &mut Collector<'_>,
    ) -> Result<bool> {
        let reach = at - q.earlier_starts;
        let mut midnight = crate::carry::floor_day(at);
        while midnight > reach && midnight - PROBE >= sync_floor {
            if !self
                .query_into(q, midnight - PROBE, midnight + PROBE, out)
                .await?
            {
                return Ok(false);
            }
            midnight -= ChronoDuration::days(1);
        }
        Ok(true)
    }

    /// Runs one analytics details job over `[start, end)` into `out`. Returns the time up to
    /// which its results hold data (the lowest `dataAvailabilityDate` its pages named, at most
    /// `end`), or `None` when the consumer has gone.
    async fn job_into(
        &self,
        q: &DiscoveryQuery,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        out: &mut Collector<'_>,
    ) -> Result<Option<DateTime<Utc>>> {
        let job_id = self.submit_details_job(q, start, end).await?;
        let mut held_to = end;
        let mut cursor: Option<String> = None;
        loop {
            let page = self.details_job_page(&job_id, cursor.as_deref()).await?;
            if let Some(avail) = parse_time(page.data_availability_date.as_deref()) {
                held_to = held_to.min(avail);
            }
            if !out.absorb(page.conversations).await {
                return Ok(None);
            }
            match page.cursor.filter(|c| !c.is_empty()) {
                Some(c) => cursor = Some(c),
                None => return Ok(Some(held_to)),
            }
        }
    }

    /// `GET /api/v2/analytics/conversations/details/jobs/availability`: the time before which
    /// the data lake is complete.
    pub async fn data_availability(&self) -> Result<Option<DateTime<Utc>>> {
        let (_, a): (_, DataAvailability) = self
            .call(
                Method::GET,
                "/api/v2/analytics/conversations/details/jobs/availability",
                None,
            )
            .await?;
        Ok(parse_time(a.data_availability_date.as_deref()))
    }

    /// Reads the synchronous details query over `[start, end)` (in pieces of at most 7 days)
    /// into `out`. Past the result cap a piece goes on from the start of the last
    /// conversation read, skipping what it read already (see [`crate::carry`]); an answer out
    /// of start order turns that off, and pieces are then halved near the cap instead.
    /// Returns false when the consumer has gone.
    async fn query_into(
        &self,
        q: &DiscoveryQuery,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        out: &mut Collector<'_>,
    ) -> Result<bool> {
        let page_size = self.config().page_size;
        let cap = self.config().max_query_results;
        let mut stack: Vec<(DateTime<Utc>, DateTime<Utc>)> = split_interval(start, end);
        stack.reverse();
        let mut carried = Carried::default();
        // Every answer so far came in start order (the continuation relies on it).
        let mut ordered = true;
        while let Some((s, e)) = stack.pop() {
            let mut from = s;
            let mut may_skip = true;
            'piece: loop {
                let mut page_number = 1u32;
                let mut check = None;
                if ordered && may_skip {
                    let ahead = carried.ahead_of(from);
                    if let Some(p) = first_page(ahead, page_size, cap) {
                        page_number = p;
                        check = Some(SkipCheck::new(ahead, from));
                    }
                }
                // The latest start read from this query (they come in ascending order).
                let mut latest: Option<DateTime<Utc>> = None;
                loop {
                    let resp = self
                        .details_query(q, from, e, page_size, page_number)
                        .await?;
                    let total = resp.total_hits.unwrap_or(0);
                    let n = resp.conversations.len();
                    // Without start order, split before the cap (totalHits is approximate:
                    // well before it, and whenever reading every page would pass it).
                    let needed = total.div_ceil(page_size as u64) * page_size as u64;
                    if !ordered
                        && page_number == 1
                        && (needed > cap || total >= cap / 10 * 9)
                        && halve(&mut stack, from, e)
                    {
                        tracing::debug!(total_hits = ?resp.total_hits, "splitting interval near the result cap");
                        break 'piece;
                    }
                    let first = (page_number as u64 - 1) * page_size as u64;
                    if let Some(c) = &mut check {
                        let last_page = n < page_size as usize;
                        if c.page(first, &resp.conversations, last_page, &carried)
                            == Verdict::Mismatch
                        {
                            tracing::debug!(
                                page_number,
                                "skipped pages may hold unread conversations; reading the piece from its first page"
                            );
                            may_skip = false;
                            continue 'piece;
                        }
                    }
                    for c in &resp.conversations {
                        match parse_time(c.conversation_start.as_deref()) {
                            Some(t) if latest.is_none_or(|l| t >= l) => {
                                latest = Some(t);
                                carried.note(c, t);
                            }
                            _ => ordered = false,
                        }
                    }
                    if !out.absorb(resp.conversations).await {
                        return Ok(false);
                    }
                    if n < page_size as usize {
                        break 'piece;
                    }
                    if (page_number as u64 + 1) * page_size as u64 > cap {
                        // A full page at the cap: go on after it.
                        if ordered && let Some(t) = latest.filter(|t| *t > from) {
                            from = t;
                            may_skip = true;
                            continue 'piece;
                        }
                        if !ordered && halve(&mut stack, from, e) {
                            break 'piece;
                        }
                        // More conversations may exist than the query can page to.
                        let reason = format!(
                            "the details query holds more than its {cap} results here (about {total}) and the piece cannot be narrowed further"
                        );
                        if !out.send(gap(from, e, reason)).await {
                            return Ok(false);
                        }
                        break 'piece;
                    }
                    page_number += 1;
                }
            }
        }
        Ok(true)
    }

    /// One page of the analytics conversation details query.
    pub async fn details_query(
        &self,
        q: &DiscoveryQuery,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        page_size: u32,
        page_number: u32,
    ) -> Result<ConversationQueryResponse> {
        let mut body = self.query_body(q, start, end);
        body["paging"] = json!({"pageSize": page_size, "pageNumber": page_number});
        let (_, r) = self
            .call(
                Method::POST,
                "/api/v2/analytics/conversations/details/query",
                Some(&body),
            )
            .await?;
        Ok(r)
    }

    fn query_body(&self, q: &DiscoveryQuery, start: DateTime<Utc>, end: DateTime<Utc>) -> Value {
        let interval = format!("{}/{}", rfc3339(start), rfc3339(end));
        let segment: Vec<Value> = or_filter("queueId", &q.queue_ids).into_iter().collect();
        let mut conversation: Vec<Value> = or_filter("divisionId", &q.division_ids)
            .into_iter()
            .collect();
        if let Some(d) = &q.direction {
            conversation.extend(or_filter("originatingDirection", std::slice::from_ref(d)));
        }
        let mut body =
            json!({"interval": interval, "order": "asc", "orderBy": "conversationStart"});
        if !segment.is_empty() {
            body["segmentFilters"] = Value::Array(segment);
        }
        if !conversation.is_empty() {
            body["conversationFilters"] = Value::Array(conversation);
        }
        body
    }

    /// Submits an asynchronous analytics details job for `[start, end)` with the query's
    /// filters and waits until it is `FULFILLED` (polling with backoff). Returns the job id.
    pub async fn submit_details_job(
        &self,
        q: &DiscoveryQuery,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<String> {
        let body = self.query_body(q, start, end);
        let (_, job): (_, crate::models::AsyncJobSubmission) = self
            .call(
                Method::POST,
                "/api/v2/analytics/conversations/details/jobs",
                Some(&body),
            )
            .await?;
        let path = format!(
            "/api/v2/analytics/conversations/details/jobs/{}",
            path_segment(&job.job_id)?
        );
        let what = format!("analytics details job {}", job.job_id);
        self.poll_job(&self.inner.details_job_ready, &what, || async {
            let (_, st): (_, crate::models::AsyncQueryStatus) =
                self.call(Method::GET, &path, None).await?;
            match st.state.as_deref() {
                Some("FULFILLED") => Ok(Some(())),
                Some(s @ ("FAILED" | "CANCELLED" | "EXPIRED")) => Err(Error::Status {
                    endpoint: "GET /api/v2/analytics/conversations/details/jobs/{id}".into(),
                    status: 200,
                    message: format!(
                        "analytics job {s}: {}",
                        st.error_message.unwrap_or_default()
                    ),
                    retry_after: None,
                }),
                _ => Ok(None),
            }
        })
        .await?;
        Ok(job.job_id)
    }

    /// One cursor page of a fulfilled analytics details job.
    pub async fn details_job_page(
        &self,
        job_id: &str,
        cursor: Option<&str>,
    ) -> Result<AsyncJobResults> {
        let mut path = format!(
            "/api/v2/analytics/conversations/details/jobs/{}/results?pageSize={JOB_PAGE_SIZE}",
            path_segment(job_id)?
        );
        if let Some(c) = cursor {
            path.push_str("&cursor=");
            path.push_str(&url::form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>());
        }
        Ok(self.call(Method::GET, &path, None).await?.1)
    }
}
