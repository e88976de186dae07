//! Reading a batch body: cap it, decompress it under a second cap, and split
//! it into one raw text per event (NDJSON lines or JSON array elements).
//!
//! Nothing here understands events; it only finds where each one begins and
//! ends so that one bad event never spoils the others.

use bytes::Bytes;
use serde_json::value::RawValue;
use std::io::Read;

use crate::IngestError;
use crate::config::IngestConfig;

/// One event's raw bytes, or why it could not even be cut out.
pub(crate) enum RawEvent<'a> {
    Text(&'a str),
    NotUtf8,
    TooLarge(&'a [u8]),
}

/// Decompresses the body as its `Content-Encoding` says.
///
/// Fails for an unknown encoding, a corrupt gzip stream, or output past
/// `max_decompressed_bytes`.
pub(crate) fn decode(
    body: Bytes,
    encoding: Option<&str>,
    config: &IngestConfig,
) -> Result<Bytes, IngestError> {
    match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("identity") => Ok(body),
        Some("gzip") | Some("x-gzip") => {
            let limit = config.max_decompressed_bytes;
            let mut out = Vec::with_capacity((body.len() * 4).min(limit));
            flate2::read::MultiGzDecoder::new(&body[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| IngestError::BadGzip(e.to_string()))?;
            if out.len() > limit {
                return Err(IngestError::DecompressedTooLarge { limit });
            }
            Ok(Bytes::from(out))
        }
        Some(other) => Err(IngestError::UnsupportedEncoding(
            footfall_schemas::events::truncate(other, 40).to_owned(),
        )),
    }
}

/// Splits a decoded body into events. A body whose first non-blank byte is
/// `[` is a JSON array; anything else is NDJSON, where blank lines are
/// skipped and do not count in the event index.
///
/// Fails when the body holds no event, holds more than `max_events`, or is an
/// array that is not valid JSON as a whole (its elements cannot be told apart).
pub(crate) fn split<'a>(
    body: &'a [u8],
    config: &IngestConfig,
) -> Result<Vec<RawEvent<'a>>, IngestError> {
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    let events = match first {
        None => return Err(IngestError::EmptyBatch),
        Some(i) if body[i] == b'[' => split_array(body, config)?,
        Some(_) => split_lines(body, config)?,
    };
    if events.is_empty() {
        return Err(IngestError::EmptyBatch);
    }
    Ok(events)
}

fn split_lines<'a>(
    body: &'a [u8],
    config: &IngestConfig,
) -> Result<Vec<RawEvent<'a>>, IngestError> {
    let mut events = Vec::new();
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if events.len() == config.max_events {
            return Err(IngestError::TooManyEvents {
                limit: config.max_events,
            });
        }
        events.push(if line.len() > config.max_event_bytes {
            RawEvent::TooLarge(line)
        } else {
            match std::str::from_utf8(line) {
                Ok(text) => RawEvent::Text(text),
                Err(_) => RawEvent::NotUtf8,
            }
        });
    }
    Ok(events)
}

fn split_array<'a>(
    body: &'a [u8],
    config: &IngestConfig,
) -> Result<Vec<RawEvent<'a>>, IngestError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| IngestError::MalformedBatch(format!("not UTF-8: {e}")))?;
    let items: Vec<&'a RawValue> = serde_json::from_str(text)
        .map_err(|e| IngestError::MalformedBatch(format!("not a valid JSON array: {e}")))?;
    if items.len() > config.max_events {
        return Err(IngestError::TooManyEvents {
            limit: config.max_events,
        });
    }
    Ok(items
        .into_iter()
        .map(|raw| {
            let text = raw.get();
            if text.len() > config.max_event_bytes {
                RawEvent::TooLarge(text.as_bytes())
            } else {
                RawEvent::Text(text)
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn texts(body: &str) -> Vec<String> {
        split(body.as_bytes(), &IngestConfig::default())
            .unwrap()
            .into_iter()
            .map(|e| match e {
                RawEvent::Text(t) => t.to_owned(),
                RawEvent::NotUtf8 => "<utf8>".into(),
                RawEvent::TooLarge(_) => "<large>".into(),
            })
            .collect()
    }

    #[test]
    fn ndjson_and_arrays() {
        assert_eq!(
            texts("{\"a\":1}\r\n\n  \n{\"b\":2}"),
            vec!["{\"a\":1}", "{\"b\":2}"]
        );
        assert_eq!(texts(" [ {\"a\":1}, 5 ]"), vec!["{\"a\":1}", "5"]);
        assert!(matches!(
            split(b"\n\n", &IngestConfig::default()),
            Err(IngestError::EmptyBatch)
        ));
        assert!(matches!(
            split(b"[]", &IngestConfig::default()),
            Err(IngestError::EmptyBatch)
        ));
        assert!(matches!(
            split(b"[{}", &IngestConfig::default()),
            Err(IngestError::MalformedBatch(_))
        ));
    }

    #[test]
    fn bad_lines_stay_local() {
        let mut body = b"{}\n".to_vec();
        body.extend_from_slice(&[0xff, 0xfe, b'\n']);
        body.extend_from_slice(&vec![b'x'; 20_000]);
        body.extend_from_slice(b"\n{}");
        let got: Vec<_> = split(&body, &IngestConfig::default())
            .unwrap()
            .into_iter()
            .map(|e| match e {
                RawEvent::Text(_) => 't',
                RawEvent::NotUtf8 => 'u',
                RawEvent::TooLarge(_) => 'l',
            })
            .collect();
        assert_eq!(got, vec!['t', 'u', 'l', 't']);
    }

    #[test]
    fn gzip_is_capped() {
        let config = IngestConfig {
            max_decompressed_bytes: 1000,
            ..IngestConfig::default()
        };
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&vec![b'\n'; 10_000]).unwrap();
        let bomb = Bytes::from(enc.finish().unwrap());
        assert!(matches!(
            decode(bomb, Some("gzip"), &config),
            Err(IngestError::DecompressedTooLarge { .. })
        ));
        assert!(matches!(
            decode(Bytes::from_static(b"x"), Some("br"), &config),
            Err(IngestError::UnsupportedEncoding(_))
        ));
        assert!(matches!(
            decode(Bytes::from_static(b"x"), Some("gzip"), &config),
            Err(IngestError::BadGzip(_))
        ));
    }
}
