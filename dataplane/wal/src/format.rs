//! The on-disk format: segment header, record framing and the scanner used by replay.
//!
//! See the crate documentation for the full description of the format.

use std::fmt;
use std::ops::Range;

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SIGDBWAL";
/// Format version written after the magic.
pub const FORMAT_VERSION: u32 = 1;
/// Length of the segment header: magic (8) + version (u32) + reserved (u32).
pub const SEGMENT_HEADER_LEN: u64 = 16;
/// Length of a record header: payload length (u32) + crc32 (u32) + sequence number (u64).
pub const RECORD_HEADER_LEN: u64 = 16;
/// Largest payload a record can hold (its length is stored as a u32).
pub const MAX_PAYLOAD_LEN: u64 = u32::MAX as u64;
/// File name extension of segment files.
pub const SEGMENT_EXTENSION: &str = "wal";

const HEADER_LEN: usize = SEGMENT_HEADER_LEN as usize;
const REC_HEADER_LEN: usize = RECORD_HEADER_LEN as usize;

/// Name of the segment file whose first record has sequence number `first_seq`:
/// the number zero-padded to 20 digits, so names sort in sequence order.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.{SEGMENT_EXTENSION}")
}

/// Parses a segment file name produced by [`segment_file_name`].
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_EXTENSION)?.strip_suffix('.')?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The header written at the start of every segment.
pub(crate) fn encode_segment_header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    // Bytes 12..16 are reserved and zero.
    h
}

/// What the start of a segment file looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    /// A valid header.
    Valid,
    /// Fewer bytes than a header: the file was created but its header never fully reached the disk.
    Short,
    /// The magic bytes are wrong.
    BadMagic,
    /// The magic is right but the version is not one we know.
    UnknownVersion(u32),
}

pub(crate) fn check_segment_header(buf: &[u8]) -> HeaderCheck {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return HeaderCheck::Short;
    };
    if header[..8] != SEGMENT_MAGIC {
        return HeaderCheck::BadMagic;
    }
    let version = read_u32(header, 8);
    if version != FORMAT_VERSION {
        return HeaderCheck::UnknownVersion(version);
    }
    HeaderCheck::Valid
}

/// CRC-32 (IEEE polynomial, as computed by `crc32fast`) over the little-endian sequence number
/// followed by the payload.
pub(crate) fn record_crc(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends the framed record to `out`. The caller guarantees `payload.len() <= MAX_PAYLOAD_LEN`.
pub(crate) fn encode_record(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.reserve(REC_HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&record_crc(seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

fn read_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// A record that validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawRecord {
    pub(crate) seq: u64,
    /// Byte range of the payload within the segment.
    pub(crate) payload: Range<usize>,
    /// Offset just past the record.
    pub(crate) end: usize,
}

/// Why the bytes at some offset are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Defect {
    /// Fewer bytes left than a record header.
    ShortHeader { available: usize },
    /// The length field points beyond the end of the file.
    LengthBeyondEnd { len: u64, available: usize },
    /// The checksum does not match the sequence number and payload.
    Checksum { stored: u32, computed: u32 },
    /// The checksum matches but the sequence number does not follow the previous record.
    SeqOutOfOrder { seq: u64, min: u64 },
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Defect::ShortHeader { available } => {
                write!(
                    f,
                    "torn record header: only {available} bytes left, a header needs {RECORD_HEADER_LEN}"
                )
            }
            Defect::LengthBeyondEnd { len, available } => write!(
                f,
                "record length {len} is impossible: only {available} bytes left after the record header"
            ),
            Defect::Checksum { stored, computed } => {
                write!(f, "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")
            }
            Defect::SeqOutOfOrder { seq, min } => {
                write!(f, "sequence number {seq} out of order: expected at least {min}")
            }
        }
    }
}

/// Decodes the record at `pos`, which must have a sequence number of at least `min_seq`.
pub(crate) fn decode_record(buf: &[u8], pos: usize, min_seq: u64) -> Result<RawRecord, Defect> {
    let available = buf.len().saturating_sub(pos);
    if available < REC_HEADER_LEN {
        return Err(Defect::ShortHeader { available });
    }
    let len = read_u32(buf, pos);
    let stored = read_u32(buf, pos + 4);
    let seq = read_u64(buf, pos + 8);
    let body = available - REC_HEADER_LEN;
    let len_usize = len as usize;
    if len_usize > body {
        return Err(Defect::LengthBeyondEnd {
            len: u64::from(len),
            available: body,
        });
    }
    let start = pos + REC_HEADER_LEN;
    let end = start + len_usize;
    let computed = record_crc(seq, &buf[start..end]);
    if computed != stored {
        return Err(Defect::Checksum { stored, computed });
    }
    if seq < min_seq {
        return Err(Defect::SeqOutOfOrder { seq, min: min_seq });
    }
    Ok(RawRecord {
        seq,
        payload: start..end,
        end,
    })
}

/// Like [`decode_record`] but only accepts sequence numbers in `min_seq..=max_seq`, and checks the
/// cheap conditions before computing the checksum (it runs at every offset while resynchronising).
fn resync_candidate(buf: &[u8], pos: usize, min_seq: u64, max_seq: u64) -> Option<RawRecord> {
    let available = buf.len().saturating_sub(pos);
    if available < REC_HEADER_LEN {
        return None;
    }
    let len = read_u32(buf, pos) as usize;
    if len > available - REC_HEADER_LEN {
        return None;
    }
    let seq = read_u64(buf, pos + 8);
    if seq < min_seq || seq > max_seq {
        return None;
    }
    let start = pos + REC_HEADER_LEN;
    let end = start + len;
    if record_crc(seq, &buf[start..end]) != read_u32(buf, pos + 4) {
        return None;
    }
    Some(RawRecord {
        seq,
        payload: start..end,
        end,
    })
}

/// One damaged stretch of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    /// Offset of the first bad byte (the start of the record that failed to validate).
    pub(crate) offset: usize,
    pub(crate) defect: Defect,
    /// Where a valid record was found again, or `None` if the rest of the segment was unreadable.
    pub(crate) resumed_at: Option<usize>,
    /// Bytes skipped (`resumed_at - offset`, or up to the end of the file).
    pub(crate) skipped_bytes: u64,
    /// Records counted as lost: the gap in sequence numbers when resynchronised, at least 1.
    pub(crate) lost_records: u64,
    /// The sequence number the damaged record should have had.
    pub(crate) expected_seq: u64,
}

/// The result of scanning the records of one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    pub(crate) records: Vec<RawRecord>,
    pub(crate) damage: Vec<Damage>,
    /// Offset just past the last valid record (or the start offset if there is none).
    pub(crate) valid_end: usize,
}

impl Scan {
    pub(crate) fn corrupt_records(&self) -> u64 {
        self.damage.iter().map(|d| d.lost_records).sum()
    }

    pub(crate) fn skipped_bytes(&self) -> u64 {
        self.damage.iter().map(|d| d.skipped_bytes).sum()
    }

    /// Whether the segment ends in bytes that are not a valid record.
    pub(crate) fn tail_damaged(&self) -> bool {
        self.damage.last().is_some_and(|d| d.resumed_at.is_none())
    }

    /// A lower bound for sequence numbers that cannot have been used in this segment: past the
    /// records of a damaged tail (each takes at least a record header) or past the last valid record.
    pub(crate) fn next_seq_bound(&self, min_seq: u64) -> u64 {
        match self.damage.last() {
            Some(d) if d.resumed_at.is_none() => d
                .expected_seq
                .saturating_add(d.skipped_bytes.div_ceil(RECORD_HEADER_LEN)),
            _ => self.records.last().map_or(min_seq, |r| r.seq.saturating_add(1)),
        }
    }
}

/// Scans the records of a segment starting at `start`. The first record must have a sequence number
/// of at least `min_seq` and every record a larger one than the record before it.
///
/// When a record fails to validate, the scanner resynchronises: it looks at every following offset
/// for a record that validates completely (length within the file, sequence number plausible, checksum
/// matching) and continues from there. Because the writer numbers the records of a segment
/// consecutively and every record takes at least [`RECORD_HEADER_LEN`] bytes, a plausible sequence
/// number after skipping `n` bytes lies in `expected..=expected + n / RECORD_HEADER_LEN`; this bound
/// keeps false matches inside payload bytes practically impossible and the scan cheap.
pub(crate) fn scan_segment(buf: &[u8], start: usize, min_seq: u64) -> Scan {
    let mut scan = Scan {
        valid_end: start.min(buf.len()),
        ..Scan::default()
    };
    let mut pos = start;
    let mut expected = min_seq;
    while pos < buf.len() {
        match decode_record(buf, pos, expected) {
            Ok(rec) => {
                expected = rec.seq.saturating_add(1);
                pos = rec.end;
                scan.valid_end = pos;
                scan.records.push(rec);
            }
            Err(defect) => {
                let last_candidate = buf.len().saturating_sub(REC_HEADER_LEN);
                let found = (pos + 1..=last_candidate).find_map(|p| {
                    let window = ((p - pos) / REC_HEADER_LEN) as u64;
                    resync_candidate(buf, p, expected, expected.saturating_add(window)).map(|r| (p, r))
                });
                match found {
                    Some((p, rec)) => {
                        scan.damage.push(Damage {
                            offset: pos,
                            defect,
                            resumed_at: Some(p),
                            skipped_bytes: (p - pos) as u64,
                            lost_records: (rec.seq - expected).max(1),
                            expected_seq: expected,
                        });
                        pos = p;
                    }
                    None => {
                        scan.damage.push(Damage {
                            offset: pos,
                            defect,
                            resumed_at: None,
                            skipped_bytes: (buf.len() - pos) as u64,
                            lost_records: 1,
                            expected_seq: expected,
                        });
                        break;
                    }
                }
            }
        }
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(first_seq: u64, payloads: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut buf = encode_segment_header().to_vec();
        let mut offsets = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            offsets.push(buf.len());
            encode_record(&mut buf, first_seq + i as u64, p);
        }
        (buf, offsets)
    }

    fn seqs(scan: &Scan) -> Vec<u64> {
        scan.records.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn file_names_sort_and_parse() {
        assert_eq!(segment_file_name(42), "00000000000000000042.wal");
        assert_eq!(parse_segment_file_name("00000000000000000042.wal"), Some(42));
        assert_eq!(parse_segment_file_name(&segment_file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_file_name("42.wal"), None);
        assert_eq!(parse_segment_file_name("0000000000000000004x.wal"), None);
        assert_eq!(parse_segment_file_name("00000000000000000042.wal.tmp"), None);
        assert!(segment_file_name(9) < segment_file_name(10));
    }

    #[test]
    fn header_checks() {
        let h = encode_segment_header();
        assert_eq!(check_segment_header(&h), HeaderCheck::Valid);
        assert_eq!(check_segment_header(&h[..10]), HeaderCheck::Short);
        assert_eq!(check_segment_header(&[]), HeaderCheck::Short);
        let mut bad = h;
        bad[0] ^= 1;
        assert_eq!(check_segment_header(&bad), HeaderCheck::BadMagic);
        let mut v2 = h;
        v2[8] = 2;
        assert_eq!(check_segment_header(&v2), HeaderCheck::UnknownVersion(2));
    }

    #[test]
    fn clean_segment_scans_fully() {
        let (buf, _) = segment(7, &[b"a", b"", b"hello world"]);
        let scan = scan_segment(&buf, HEADER_LEN, 7);
        assert_eq!(seqs(&scan), vec![7, 8, 9]);
        assert!(scan.damage.is_empty());
        assert_eq!(scan.valid_end, buf.len());
        assert_eq!(&buf[scan.records[2].payload.clone()], b"hello world");
        assert_eq!(scan.records[1].payload.len(), 0);
    }

    #[test]
    fn torn_tail_is_cut() {
        let (buf, offsets) = segment(1, &[b"first", b"second", b"third"]);
        for cut in offsets[2] + 1..buf.len() {
            let scan = scan_segment(&buf[..cut], HEADER_LEN, 1);
            assert_eq!(seqs(&scan), vec![1, 2], "cut at {cut}");
            assert_eq!(scan.valid_end, offsets[2]);
            assert!(scan.tail_damaged());
            assert_eq!(scan.skipped_bytes(), (cut - offsets[2]) as u64);
            assert_eq!(scan.corrupt_records(), 1);
            assert!(scan.next_seq_bound(1) >= 4, "cut at {cut}");
        }
    }

    #[test]
    fn every_single_bit_flip_loses_exactly_one_record() {
        let payloads: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 3 + usize::from(i) * 5]).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let (buf, offsets) = segment(100, &refs);
        // Flip every bit of the middle record (index 3), header included.
        let victim = 3;
        let (from, to) = (offsets[victim], offsets[victim + 1]);
        for byte in from..to {
            for bit in 0..8 {
                let mut damaged = buf.clone();
                damaged[byte] ^= 1 << bit;
                let scan = scan_segment(&damaged, HEADER_LEN, 100);
                assert_eq!(seqs(&scan), vec![100, 101, 102, 104, 105], "byte {byte} bit {bit}");
                assert_eq!(scan.corrupt_records(), 1);
                assert_eq!(scan.skipped_bytes(), (to - from) as u64);
                assert!(!scan.tail_damaged());
            }
        }
    }

    #[test]
    fn garbage_in_the_middle_is_skipped() {
        let (mut buf, offsets) = segment(1, &[b"one", b"two", b"three", b"four"]);
        // Overwrite records 2 and 3 with zeros: two records lost.
        for b in &mut buf[offsets[1]..offsets[3]] {
            *b = 0;
        }
        let scan = scan_segment(&buf, HEADER_LEN, 1);
        assert_eq!(seqs(&scan), vec![1, 4]);
        assert_eq!(scan.corrupt_records(), 2);
        assert_eq!(scan.skipped_bytes(), (offsets[3] - offsets[1]) as u64);
    }

    #[test]
    fn stale_sequence_numbers_are_rejected() {
        let (buf, _) = segment(5, &[b"x", b"y"]);
        let scan = scan_segment(&buf, HEADER_LEN, 6);
        // Record 5 is below the minimum; record 6 is found by resynchronising.
        assert_eq!(seqs(&scan), vec![6]);
        assert!(matches!(
            scan.damage[0].defect,
            Defect::SeqOutOfOrder { seq: 5, min: 6 }
        ));
    }

    #[test]
    fn empty_record_area() {
        let (buf, _) = segment(1, &[]);
        let scan = scan_segment(&buf, HEADER_LEN, 1);
        assert!(scan.records.is_empty());
        assert!(scan.damage.is_empty());
        assert_eq!(scan.valid_end, HEADER_LEN);
    }

    #[test]
    fn defects_describe_themselves() {
        let (buf, _) = segment(1, &[b"payload"]);
        let mut bad = buf.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let err = decode_record(&bad, HEADER_LEN, 1).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        let err = decode_record(&buf[..buf.len() - 1], HEADER_LEN, 1).unwrap_err();
        assert!(err.to_string().contains("impossible"), "{err}");
        let err = decode_record(&buf[..HEADER_LEN + 3], HEADER_LEN, 1).unwrap_err();
        assert!(err.to_string().contains("torn record header"), "{err}");
    }
}
