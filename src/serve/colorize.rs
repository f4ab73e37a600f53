//! `POST /api/colorize`: options, upload parsing, the blocking work and the encoded reply.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use clap::ValueEnum;
use image::{DynamicImage, ImageFormat, ImageReader};

use super::App;
use super::error::ApiError;
use super::pool::PoolError;
use crate::classic::{self, HintSet};
use crate::infer::Fit;
use crate::method::{Hints, Method, MethodKind, PaletteMap, Reference};
use crate::pipeline::Colorize;

/// Most hint points in one request.
pub const MAX_HINT_POINTS: usize = 4096;
/// Largest hint radius, pixels.
pub const MAX_HINT_RADIUS: f32 = 100.0;
/// Working sizes a client may ask for (the model rounds down to its stride multiple).
pub const SIZE_RANGE: std::ops::RangeInclusive<usize> = 16..=crate::model::MAX_SIZE;
/// Formats accepted as uploads (each has a well-tested decoder).
pub const INPUT_FORMATS: &[ImageFormat] = &[
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::WebP,
    ImageFormat::Tiff,
    ImageFormat::Bmp,
    ImageFormat::Gif,
];

/// Output image formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutFormat {
    /// PNG (16-bit for 16-bit inputs).
    #[default]
    Png,
    /// JPEG, quality 95.
    #[value(alias = "jpeg")]
    Jpg,
    /// Lossless WebP.
    Webp,
}

impl OutFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            OutFormat::Png => "image/png",
            OutFormat::Jpg => "image/jpeg",
            OutFormat::Webp => "image/webp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            OutFormat::Png => "png",
            OutFormat::Jpg => "jpg",
            OutFormat::Webp => "webp",
        }
    }
}

/// The options of one colourisation request (query parameters or multipart text fields).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Model name (GAN only; the server's default when absent).
    pub model: Option<String>,
    pub method: Option<MethodKind>,
    /// Working size of the network (GAN only).
    pub size: Option<usize>,
    pub fit: Option<Fit>,
    /// Chroma gain of the GAN's prediction (GAN only; 1 when absent).
    pub saturation: Option<f32>,
    pub hints: Option<HintSet>,
    /// Palette preset name, or a palette as JSON (`{"stops": [[0, "#000"], ...]}`).
    pub palette: Option<String>,
    pub palette_strength: Option<f32>,
    pub format: OutFormat,
}

fn parse_enum<T: ValueEnum>(key: &str, value: &str) -> Result<T, ApiError> {
    T::from_str(value.trim(), true).map_err(|_| {
        let valid: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|v| v.get_name().to_string())
            .collect();
        ApiError::bad_request(format!("invalid {key} '{value}' (use {})", valid.join(", ")))
    })
}

/// A colour gain in 0..=4 (palette strength, saturation).
fn parse_gain(key: &str, value: &str) -> Result<f32, ApiError> {
    let v: f32 = value
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid {key} '{value}'")))?;
    if !(v.is_finite() && (0.0..=4.0).contains(&v)) {
        return Err(ApiError::bad_request(format!("invalid {key} {v}: use 0..=4")));
    }
    Ok(v)
}

impl Options {
    /// Sets one option from its text form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ApiError> {
        match key {
            "model" => self.model = Some(value.trim().to_string()).filter(|s| !s.is_empty()),
            "method" => self.method = Some(parse_enum(key, value)?),
            "fit" => self.fit = Some(parse_enum(key, value)?),
            "format" => self.format = parse_enum(key, value)?,
            "size" => {
                let s: usize = value
                    .trim()
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid size '{value}': not a whole number")))?;
                if !SIZE_RANGE.contains(&s) {
                    return Err(ApiError::bad_request(format!(
                        "invalid size {s}: use {}..={}",
                        SIZE_RANGE.start(),
                        SIZE_RANGE.end()
                    )));
                }
                self.size = Some(s);
            }
            "hints" => {
                let set = classic::hints_from_json(value).map_err(|e| ApiError::bad_request(e.to_string()))?;
                if set.points.len() > MAX_HINT_POINTS {
                    return Err(ApiError::bad_request(format!(
                        "too many hint points ({}; at most {MAX_HINT_POINTS})",
                        set.points.len()
                    )));
                }
                if let Some((i, p)) = set
                    .points
                    .iter()
                    .enumerate()
                    .find(|(_, p)| p.radius.is_some_and(|r| r > MAX_HINT_RADIUS))
                {
                    return Err(ApiError::bad_request(format!(
                        "hint #{i}: radius {} is over the limit of {MAX_HINT_RADIUS}",
                        p.radius.unwrap_or_default()
                    )));
                }
                self.hints = Some(set);
            }
            "palette" => self.palette = Some(value.to_string()),
            "palette_strength" => self.palette_strength = Some(parse_gain(key, value)?),
            "saturation" => self.saturation = Some(parse_gain(key, value)?),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown option '{other}' (known: model, method, size, fit, saturation, hints, palette, palette_strength, format)"
                )));
            }
        }
        Ok(())
    }

    /// The method, defaulting to the GAN.
    pub fn method(&self) -> MethodKind {
        self.method.unwrap_or(MethodKind::Gan)
    }
}

/// What the blocking job returns.
struct Encoded {
    bytes: Vec<u8>,
    format: OutFormat,
    label: String,
}

/// The handler: reads the upload (multipart or raw body), runs the work on the pool and
/// answers with the encoded image.
pub async fn colorize(State(app): State<Arc<App>>, req: Request) -> Result<Response, ApiError> {
    let start = Instant::now();
    let mut opts = Options::default();
    let Query(pairs): Query<Vec<(String, String)>> =
        Query::try_from_uri(req.uri()).map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))?;
    for (k, v) in &pairs {
        opts.set(k, v)?;
    }
    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > app.limits.max_body_bytes as u64) {
        return Err(body_too_large(app.limits.max_body_bytes));
    }
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    let (image, reference) = if is_multipart {
        read_multipart(req, &mut opts, app.limits.max_body_bytes).await?
    } else {
        let body = Bytes::from_request(req, &()).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                body_too_large(app.limits.max_body_bytes)
            } else {
                ApiError::new(e.status(), format!("cannot read the request body: {}", e.body_text()))
            }
        })?;
        (body, None)
    };
    if image.is_empty() {
        return Err(ApiError::bad_request(
            "no image: send it as the request body or as the multipart field 'image'",
        ));
    }
    let job_app = app.clone();
    let encoded = app
        .pool
        .run(move || process(&job_app, &opts, &image, reference.as_deref()))
        .await
        .map_err(|e| match e {
            PoolError::Busy { retry_after_s } => ApiError::unavailable(
                "server busy: every worker is busy and the wait queue is full; retry later",
                retry_after_s,
            ),
            PoolError::Panicked(m) => ApiError::internal(format!("colourisation failed: {m}")),
        })??;
    let mut res = encoded.bytes.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoded.format.content_type()),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "inline; filename=\"colorized.{}\"",
        encoded.format.extension()
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&encoded.label) {
        h.insert("x-tinct-method", v);
    }
    h.insert(
        "x-tinct-elapsed-ms",
        HeaderValue::from(start.elapsed().as_millis() as u64),
    );
    Ok(res)
}

fn body_too_large(limit: usize) -> ApiError {
    ApiError::too_large(format!(
        "request body too large (limit {} bytes; see --max-body-mb)",
        limit
    ))
}

/// Reads a multipart upload: files `image` and `reference`, every other field an option.
async fn read_multipart(req: Request, opts: &mut Options, limit: usize) -> Result<(Bytes, Option<Bytes>), ApiError> {
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|e| ApiError::new(e.status(), format!("bad multipart upload: {}", e.body_text())))?;
    let field_err = |e: axum::extract::multipart::MultipartError| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            body_too_large(limit)
        } else {
            ApiError::new(e.status(), format!("bad multipart upload: {}", e.body_text()))
        }
    };
    let (mut image, mut reference) = (None, None);
    while let Some(field) = form.next_field().await.map_err(field_err)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "image" | "reference" => {
                let bytes = field.bytes().await.map_err(field_err)?;
                let slot = if name == "image" { &mut image } else { &mut reference };
                if slot.replace(bytes).is_some() {
                    return Err(ApiError::bad_request(format!("the field '{name}' was sent twice")));
                }
            }
            "" => return Err(ApiError::bad_request("multipart field without a name")),
            _ => {
                let text = field.text().await.map_err(field_err)?;
                opts.set(&name, &text)?;
            }
        }
    }
    let Some(image) = image else {
        return Err(ApiError::bad_request(
            "no image: the multipart upload has no field 'image'",
        ));
    };
    Ok((image, reference))
}

/// Decodes an upload with the server's limits: 415 for what is not an image in an accepted
/// format, 413 over the pixel limit (checked from the header, before decoding), 422 for a
/// corrupt or truncated file.
pub fn decode_upload(bytes: &[u8], max_pixels: u64, what: &str) -> Result<DynamicImage, ApiError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ApiError::unprocessable(format!("{what}: cannot read: {e}")))?;
    let Some(format) = reader.format() else {
        return Err(ApiError::unsupported(format!(
            "{what}: not an image (unrecognised content; send JPEG, PNG, WebP, TIFF, BMP or GIF)"
        )));
    };
    if !INPUT_FORMATS.contains(&format) {
        return Err(ApiError::unsupported(format!(
            "{what}: {format:?} images are not accepted (send JPEG, PNG, WebP, TIFF, BMP or GIF)"
        )));
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| ApiError::unprocessable(format!("{what}: corrupt or truncated image: {e}")))?;
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(ApiError::too_large(format!(
            "{what}: image too large: {w}x{h} is {} pixels, over the limit of {max_pixels} (see --max-pixels)",
            u64::from(w) * u64::from(h)
        )));
    }
    crate::imageio::decode_bytes(bytes, Some(format)).map_err(|e| {
        let m = format!("{what}: {e:#}");
        if m.contains("too large") {
            ApiError::too_large(m)
        } else {
            ApiError::unprocessable(m)
        }
    })
}

/// The blocking part: decode, colourise, encode.
fn process(app: &App, o: &Options, image: &[u8], reference: Option<&[u8]>) -> Result<Encoded, ApiError> {
    let img = decode_upload(image, app.limits.max_pixels, "image")?;
    let kind = o.method();
    let (out, label) = match kind {
        MethodKind::Gan => {
            let model = app.registry.get(o.model.as_deref())?;
            let colorizer = model
                .colorizer(app.registry.device(), o.size)
                .map_err(|e| ApiError::bad_request(format!("{e:#}")))?
                .with_fit(o.fit.unwrap_or_default())
                .with_saturation(o.saturation.unwrap_or(1.0))
                .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
            let out = colorizer
                .colorize_image(&img)
                .map_err(|e| ApiError::internal(format!("{e:#}")))?;
            let name = o.model.as_deref().unwrap_or(app.registry.default_name());
            (out, format!("gan:{name}{}", colorizer.settings_label()))
        }
        kind => {
            let method = classic_method(kind, o, reference, app.limits.max_pixels)?;
            let out = method
                .colorizer()
                .colorize_image(&img)
                .map_err(|e| ApiError::unprocessable(format!("{e:#}")))?;
            (out, method.name())
        }
    };
    let bytes = encode(&out, o.format).map_err(|e| ApiError::internal(format!("cannot encode the result: {e}")))?;
    Ok(Encoded {
        bytes,
        format: o.format,
        label,
    })
}

/// Builds a classic method from request options (never from server files).
fn classic_method(
    kind: MethodKind,
    o: &Options,
    reference: Option<&[u8]>,
    max_pixels: u64,
) -> Result<Method, ApiError> {
    Ok(match kind {
        MethodKind::Gray => Method::Gray,
        MethodKind::Reference => {
            let Some(bytes) = reference else {
                return Err(ApiError::bad_request(
                    "method=reference needs a reference colour photo in the multipart field 'reference'",
                ));
            };
            Method::Reference(Reference {
                image: decode_upload(bytes, max_pixels, "reference")?.to_rgb8(),
                seed: 42,
            })
        }
        MethodKind::Hints => {
            let Some(set) = &o.hints else {
                return Err(ApiError::bad_request(
                    "method=hints needs hint points: hints={\"points\":[{\"x\":10,\"y\":20,\"color\":\"#ff0000\"}]}",
                ));
            };
            Method::Hints(Hints::Points(set.clone()))
        }
        MethodKind::Palette => {
            let spec = o.palette.as_deref().unwrap_or("sepia").trim();
            let palette = if spec.starts_with('{') {
                classic::Palette::from_json("custom", spec).map_err(|e| ApiError::bad_request(e.to_string()))?
            } else {
                classic::preset(spec).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "unknown palette '{spec}' (presets: {}; or a JSON palette)",
                        classic::preset_names().join(", ")
                    ))
                })?
            };
            Method::Palette(PaletteMap {
                palette,
                strength: o.palette_strength.unwrap_or(1.0),
            })
        }
        MethodKind::Gan => return Err(ApiError::internal("the GAN is not a classic method")),
    })
}

/// Encodes the result: fast-compressed PNG (16-bit and alpha kept), JPEG at quality 95,
/// lossless WebP (alpha kept).
pub fn encode(img: &DynamicImage, format: OutFormat) -> image::ImageResult<Vec<u8>> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let mut buf = Vec::new();
    match format {
        OutFormat::Png => {
            let enc = PngEncoder::new_with_quality(&mut buf, CompressionType::Fast, FilterType::Adaptive);
            match (crate::imageio::is_high_bit_depth(img), img.color().has_alpha()) {
                (true, true) => img.to_rgba16().write_with_encoder(enc)?,
                (true, false) => img.to_rgb16().write_with_encoder(enc)?,
                (false, true) => img.to_rgba8().write_with_encoder(enc)?,
                (false, false) => img.to_rgb8().write_with_encoder(enc)?,
            }
        }
        OutFormat::Jpg => {
            let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, crate::imageio::JPEG_QUALITY);
            img.to_rgb8().write_with_encoder(enc)?;
        }
        OutFormat::Webp => {
            let enc = image::codecs::webp::WebPEncoder::new_lossless(&mut buf);
            if img.color().has_alpha() {
                img.to_rgba8().write_with_encoder(enc)?;
            } else {
                img.to_rgb8().write_with_encoder(enc)?;
            }
        }
    }
    Ok(buf)
}
