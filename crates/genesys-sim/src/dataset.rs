//! The generated org: conversations and their recordings, derived from a seed.

use chrono::{DateTime, Duration, Utc};

use crate::config::SimConfig;
use crate::content::BodyKind;

/// One recording of a simulated conversation.
#[derive(Debug, Clone)]
pub struct SimRecording {
    /// Position in the dataset, 0-based; faults address recordings by it.
    pub index: usize,
    /// Recording id (UUID form).
    pub id: String,
    /// Owning conversation id.
    pub conversation_id: String,
    /// `audio`, `screen`, `chat` or `email` (the `media` field of `Recording`).
    pub media: String,
    /// Start time, RFC 3339.
    pub start: DateTime<Utc>,
    /// End time, RFC 3339.
    pub end: DateTime<Utc>,
    /// Body size in bytes in the native format.
    pub size: u64,
    /// Seed of the body generator.
    pub body_seed: u64,
    /// `fileState`: `AVAILABLE`, or `ARCHIVED` for the archived fault.
    pub file_state: String,
}

impl SimRecording {
    /// Content type of the native (batch download) format. Audio is WAV here (the real
    /// service's native audio is Ogg Opus; the client takes the type from the batch result's
    /// `contentType` either way), so what the simulator serves can be played.
    pub fn native_content_type(&self) -> &'static str {
        match self.media.as_str() {
            "screen" => "video/webm",
            "chat" | "messaging" => "application/json",
            "email" => "message/rfc822",
            _ => "audio/wav",
        }
    }

    /// What the recording's body is: the simulator does not transcode, every format of a
    /// recording serves these bytes (see [`crate::ContentGen`]).
    pub fn body_kind(&self) -> BodyKind {
        match self.media.as_str() {
            "screen" => BodyKind::WebM,
            "chat" | "messaging" => BodyKind::Json,
            "email" => BodyKind::Email,
            _ => BodyKind::Wav,
        }
    }
}

/// One simulated conversation.
#[derive(Debug, Clone, Default)]
pub struct SimConversation {
    /// Conversation id (UUID form).
    pub id: String,
    /// `conversationStart`.
    pub start: DateTime<Utc>,
    /// `conversationEnd`.
    pub end: DateTime<Utc>,
    /// `originatingDirection`: `inbound` or `outbound`.
    pub direction: String,
    /// Analytics session `mediaType`: `voice`, `chat`, `email`, `screenshare`...
    pub session_media: String,
    /// Queue id of the agent segment.
    pub queue_id: String,
    /// Division ids.
    pub division_id: String,
    /// User id of the agent (`participants[].userId`).
    pub user_id: String,
    /// Wrap-up code id of the agent's wrap-up segment.
    pub wrap_up_code: String,
    /// The customer's number (`ani`).
    pub ani: String,
    /// The number called (`dnis`).
    pub dnis: String,
    /// Indices into [`Dataset::recordings`].
    pub recordings: Vec<usize>,
}

/// All conversations and recordings of the simulated org, sorted by start time.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Conversations in start order.
    pub conversations: Vec<SimConversation>,
    /// Recordings; `index` equals the position here.
    pub recordings: Vec<SimRecording>,
}

pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub(crate) fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }
}

/// Agents, wrap-up codes and numbers: drawn per conversation from a generator of their own
/// (seeded by the conversation id), so they change nothing else about the dataset.
struct People {
    seed: u64,
    users: Vec<String>,
    wrap_up_codes: Vec<String>,
}

impl People {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0x000A_6E17);
        Self {
            seed,
            users: (0..20).map(|_| rng.uuid()).collect(),
            wrap_up_codes: (0..5).map(|_| rng.uuid()).collect(),
        }
    }
}

impl SimConversation {
    fn with_people(mut self, people: &People) -> Self {
        let h = self.id.bytes().fold(people.seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
        });
        let mut rng = Rng::new(h);
        self.user_id = people.users[rng.below(people.users.len() as u64) as usize].clone();
        self.wrap_up_code =
            people.wrap_up_codes[rng.below(people.wrap_up_codes.len() as u64) as usize].clone();
        self.ani = format!("tel:+1555{:07}", rng.below(10_000_000));
        self.dnis = format!("tel:+1800555{:04}", 100 + rng.below(3));
        self
    }
}

impl Dataset {
    /// Generates `config.recordings` recordings spread over `config.start .. config.end()`.
    /// Most conversations are voice calls with one recording; some have two (consult), and a
    /// few are screen, chat or email interactions.
    pub fn generate(config: &SimConfig) -> Self {
        let mut rng = Rng::new(config.seed);
        let people = People::new(config.seed);
        let span_ms = config.span.as_millis().max(1) as u64;
        let queues: Vec<String> = (0..4).map(|_| rng.uuid()).collect();
        let divisions: Vec<String> = (0..2).map(|_| rng.uuid()).collect();
        let mut starts: Vec<u64> = Vec::new();
        let mut conversations = Vec::new();
        let mut recordings = Vec::new();
        let (min, max) = config.size_range;
        while recordings.len() < config.recordings {
            let start = config.start + Duration::milliseconds(rng.below(span_ms) as i64);
            let dur = Duration::seconds(30 + rng.below(1800) as i64);
            let kind = rng.below(100);
            let (session_media, media) = match kind {
                0..=84 => ("voice", "audio"),
                85..=89 => ("screenshare", "screen"),
                90..=94 => ("chat", "chat"),
                _ => ("email", "email"),
            };
            let n_rec = if media == "audio" && rng.below(10) == 0 {
                2
            } else {
                1
            };
            let cid = rng.uuid();
            let mut idxs = Vec::new();
            for _ in 0..n_rec {
                if recordings.len() >= config.recordings {
                    break;
                }
                let size = min + rng.below(max.saturating_sub(min) + 1);
                idxs.push(recordings.len());
                recordings.push(SimRecording {
                    index: recordings.len(),
                    id: rng.uuid(),
                    conversation_id: cid.clone(),
                    media: media.into(),
                    start,
                    end: start + dur,
                    size,
                    body_seed: rng.next_u64(),
                    file_state: "AVAILABLE".into(),
                });
            }
            starts.push(start.timestamp_millis() as u64);
            conversations.push(
                SimConversation {
                    id: cid,
                    start,
                    end: start + dur,
                    direction: if rng.below(3) == 0 {
                        "outbound"
                    } else {
                        "inbound"
                    }
                    .into(),
                    session_media: session_media.into(),
                    queue_id: queues[rng.below(queues.len() as u64) as usize].clone(),
                    division_id: divisions[rng.below(divisions.len() as u64) as usize].clone(),
                    recordings: idxs,
                    ..SimConversation::default()
                }
                .with_people(&people),
            );
        }
        // Unrecorded conversations draw from their own generator, so adding them changes
        // nothing about the recorded ones.
        let mut extra = Rng::new(config.seed ^ 0x00DE_CADE);
        for _ in 0..config.unrecorded_conversations {
            let start = config.start + Duration::milliseconds(extra.below(span_ms) as i64);
            let dur = Duration::seconds(30 + extra.below(1800) as i64);
            conversations.push(
                SimConversation {
                    id: extra.uuid(),
                    start,
                    end: start + dur,
                    direction: "inbound".into(),
                    session_media: "voice".into(),
                    queue_id: queues[extra.below(queues.len() as u64) as usize].clone(),
                    division_id: divisions[extra.below(divisions.len() as u64) as usize].clone(),
                    recordings: vec![],
                    ..SimConversation::default()
                }
                .with_people(&people),
            );
        }
        let mut long = Rng::new(config.seed ^ 0x0010_0C0A);
        for &(start, end) in &config.long_conversations {
            let cid = long.uuid();
            let index = recordings.len();
            recordings.push(SimRecording {
                index,
                id: long.uuid(),
                conversation_id: cid.clone(),
                media: "audio".into(),
                start,
                end,
                size: min + long.below(max.saturating_sub(min) + 1),
                body_seed: long.next_u64(),
                file_state: "AVAILABLE".into(),
            });
            conversations.push(
                SimConversation {
                    id: cid,
                    start,
                    end,
                    direction: "inbound".into(),
                    session_media: "voice".into(),
                    queue_id: queues[0].clone(),
                    division_id: divisions[0].clone(),
                    recordings: vec![index],
                    ..SimConversation::default()
                }
                .with_people(&people),
            );
        }
        conversations.sort_by(|a, b| a.start.cmp(&b.start).then(a.id.cmp(&b.id)));
        Self {
            conversations,
            recordings,
        }
    }

    /// Finds a conversation by id.
    pub fn conversation(&self, id: &str) -> Option<&SimConversation> {
        self.conversations.iter().find(|c| c.id == id)
    }

    /// Finds a recording by id.
    pub fn recording(&self, id: &str) -> Option<&SimRecording> {
        self.recordings.iter().find(|r| r.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_complete() {
        let cfg = SimConfig {
            recordings: 120,
            ..SimConfig::default()
        };
        let a = Dataset::generate(&cfg);
        let b = Dataset::generate(&cfg);
        assert_eq!(a.recordings.len(), 120);
        assert_eq!(
            a.recordings.iter().map(|r| &r.id).collect::<Vec<_>>(),
            b.recordings.iter().map(|r| &r.id).collect::<Vec<_>>()
        );
        let in_convs: usize = a.conversations.iter().map(|c| c.recordings.len()).sum();
        assert_eq!(in_convs, 120);
        assert!(a.conversations.windows(2).all(|w| w[0].start <= w[1].start));
        for r in &a.recordings {
            assert!(r.start >= cfg.start && r.start < cfg.end());
            assert!(r.size >= cfg.size_range.0 && r.size <= cfg.size_range.1);
        }
        let ids: std::collections::HashSet<_> = a.recordings.iter().map(|r| &r.id).collect();
        assert_eq!(ids.len(), 120, "ids are unique");
    }
}
