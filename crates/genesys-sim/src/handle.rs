//! The test controls and accessors of a running simulator ([`SimHandle`]).

use std::sync::Arc;

use crate::config::SimConfig;
use crate::content::content_md5;
use crate::dataset::Dataset;
use crate::recording::media_url;
use crate::state::{SimStats, State, has_two_files, md5_of, part_seed};

/// A running simulator; dropping it stops the server.
pub struct SimHandle {
    pub(crate) state: Arc<State>,
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SimHandle {
    /// Base URL of the API, e.g. `http://127.0.0.1:4321`. The login URL is the same host.
    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The generated org.
    pub fn dataset(&self) -> &Dataset {
        &self.state.data
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SimConfig {
        &self.state.cfg
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SimStats {
        let mut stats = self.state.lock().stats.clone();
        stats.media_overlap = self
            .state
            .media_watch
            .overlap
            .load(std::sync::atomic::Ordering::SeqCst);
        stats
    }

    /// MD5 of the correct body of a recording.
    pub fn expected_md5(&self, index: usize) -> [u8; 16] {
        md5_of(&self.state, index)
    }

    /// Revokes every issued token, so the next API call with one gets 401.
    pub fn revoke_all_tokens(&self) {
        self.state.lock().tokens.clear();
    }

    /// Hides conversations from analytics (details query and jobs), as Genesys's data lag
    /// does for recent ones; their media stays downloadable.
    pub fn hide_conversations<I: IntoIterator<Item = String>>(&self, ids: I) {
        self.state.lock().hidden.extend(ids);
    }

    /// Fresh signed media URLs of every recording in its native format, as batch downloads
    /// hand them out: `(recording id, content type, URL)`. For benchmarks that give other
    /// tools the same URLs the archiver downloads.
    pub fn media_urls(&self) -> Vec<(String, &'static str, String)> {
        self.state
            .data
            .recordings
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    r.native_content_type(),
                    media_url(&self.state, r, "NATIVE"),
                )
            })
            .collect()
    }

    /// Computes every recording's MD5 (its media `ETag`) now, on two blocking threads, so
    /// that no media request pays for it later. Benchmarks call this before they time
    /// anything: otherwise the first download of each recording makes the simulator hash the
    /// whole body before it sends a byte.
    pub async fn precompute_etags(&self) {
        let n = self.state.data.recordings.len();
        let tasks: Vec<_> = (0..2)
            .map(|part| {
                let state = Arc::clone(&self.state);
                tokio::task::spawn_blocking(move || {
                    for index in (part..n).step_by(2) {
                        md5_of(&state, index);
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Starts or ends a simulated platform outage: every `/api/v2` request answers 503.
    pub fn set_outage(&self, on: bool) {
        self.state.lock().outage = on;
    }

    /// Makes these hidden conversations visible (a stream of new conversations).
    pub fn reveal_conversations<I: IntoIterator<Item = String>>(&self, ids: I) {
        let mut st = self.state.lock();
        for id in ids {
            st.hidden.remove(&id);
        }
    }

    /// Makes these hidden conversations visible when the `n`-th details query (from 1)
    /// arrives, before it is answered: analytics data landing while a client reads an
    /// interval page by page, at a moment a test chooses.
    pub fn reveal_at_details_query<I: IntoIterator<Item = String>>(&self, n: u64, ids: I) {
        self.state
            .lock()
            .reveal_at_query
            .push((n, ids.into_iter().collect()));
    }

    /// Lists every hidden conversation again.
    pub fn reveal_all_conversations(&self) {
        self.state.lock().hidden.clear();
    }

    /// Starts or ends an outage of the login host: every token request answers 503.
    pub fn set_login_outage(&self, on: bool) {
        self.state.lock().login_outage = on;
    }

    /// Ends every conversation held open (`SimConfig::hold_open`): analytics reports their
    /// `conversationEnd`, and their recordings become `AVAILABLE` (after `upload_lag`).
    pub fn close_all_conversations(&self) {
        self.state.lock().held_open.clear();
    }

    /// Ids of the conversations held open now.
    pub fn open_conversations(&self) -> Vec<String> {
        let mut v: Vec<String> = self.state.visibility().held_open.into_iter().collect();
        v.sort();
        v
    }

    /// MD5 of file `part` of a recording (0 for the first; 1 for the second file of a
    /// [`crate::Fault::TwoFiles`] recording).
    pub fn expected_part_md5(&self, index: usize, part: u32) -> [u8; 16] {
        if part == 0 {
            return md5_of(&self.state, index);
        }
        let r = &self.state.data.recordings[index];
        content_md5(r.body_kind(), part_seed(r.body_seed, part), r.size)
    }

    /// Whether recording `index` has two files ([`crate::Fault::TwoFiles`]).
    pub fn has_two_files(&self, index: usize) -> bool {
        has_two_files(&self.state, index)
    }
}

impl SimHandle {
    /// Detaches these recordings (by recording id) from their conversations, whatever the
    /// clock says: until [`SimHandle::attach_recordings`] they are absent from
    /// `recordingmetadata`, the per-recording GET (404), batch requests submitted meanwhile,
    /// the compat listing and the retention query, as a late file is before its time. They
    /// are not listed as orphans. Unknown ids are ignored.
    pub fn detach_recordings<I>(&self, ids: I)
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let idx: Vec<usize> = self.indexes(ids);
        let mut inner = self.state.lock();
        for i in idx {
            inner.attach.forced.remove(&i);
            inner.attach.detached.insert(i);
        }
    }

    /// Attaches these recordings (by recording id) to their conversations now: undoes
    /// [`SimHandle::detach_recordings`], and also attaches a late file before its time or an
    /// orphan (which then leaves `GET /api/v2/orphanrecordings`), as an admin's re-attachment
    /// would. Unknown ids are ignored.
    pub fn attach_recordings<I>(&self, ids: I)
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let idx: Vec<usize> = self.indexes(ids);
        let mut inner = self.state.lock();
        for i in idx {
            inner.attach.detached.remove(&i);
            inner.attach.forced.insert(i);
        }
    }

    /// Puts conversations under deletion protection (legal hold): their recordings are not
    /// deleted while it lasts, whatever their delete date, and
    /// `POST /api/v2/recordings/deletionprotection` names them.
    pub fn protect_conversations<I>(&self, ids: I)
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut inner = self.state.lock();
        inner
            .protected
            .extend(ids.into_iter().map(|i| i.as_ref().to_string()));
    }

    /// Lets `d` pass for delete dates only: a recording whose delete date falls before now +
    /// `d` (summed over calls) is deleted, unless its conversation is protected.
    pub fn pass_retention_time(&self, d: std::time::Duration) {
        let mut inner = self.state.lock();
        inner.retention_ahead += chrono::Duration::from_std(d).unwrap_or_default();
    }

    /// The delete date set on recording `index` through the retention PUT, if any.
    pub fn delete_date(&self, index: usize) -> Option<chrono::DateTime<chrono::Utc>> {
        self.state.lock().delete_dates.get(&index).copied()
    }

    /// Whether recording `index` is deleted at the source now (its delete date passed).
    pub fn is_deleted(&self, index: usize) -> bool {
        self.state.visibility().deleted.contains(&index)
    }

    /// Whether recording `index` is attached to its conversation now (not a late file before
    /// its time, not an orphan, not detached).
    pub fn is_attached(&self, index: usize) -> bool {
        self.state.visibility().attached(index)
    }

    /// The orphan id of recording `index` if `SimConfig::orphans` names it (whether or not it
    /// has been re-attached since); distinct from its recording id.
    pub fn orphan_id(&self, index: usize) -> Option<&str> {
        self.state.life.orphan_id.get(&index).map(String::as_str)
    }

    fn indexes<I>(&self, ids: I) -> Vec<usize>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        ids.into_iter()
            .filter_map(|id| self.state.by_id.get(id.as_ref()).copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Simulator;

    #[tokio::test]
    async fn precompute_etags_fills_the_cache_with_each_body_md5() {
        let sim = Simulator::start(SimConfig {
            recordings: 5,
            size_range: (1, 300_000),
            ..SimConfig::default()
        })
        .await
        .unwrap();
        assert!(sim.state.lock().md5_cache.is_empty());
        sim.precompute_etags().await;
        let cache = sim.state.lock().md5_cache.clone();
        assert_eq!(cache.len(), sim.state.data.recordings.len());
        for (i, r) in sim.state.data.recordings.iter().enumerate() {
            assert_eq!(
                cache[&i],
                content_md5(r.body_kind(), r.body_seed, r.size),
                "recording {i}"
            );
        }
    }
}
