//! Attention grids and window figures as PNG, their sizes capped before anything is
//! allocated.

use super::colormap::{colormap_rgb, sqrt_scaled};
use crate::records::AttentionSnapshot;

/// Why an image could not be encoded as PNG.
#[derive(Debug, thiserror::Error)]
pub enum PngError {
    /// The pixels given are not `width x height` of them.
    #[error("{width} x {height} pixels do not match the data")]
    Size {
        /// Pixels across.
        width: usize,
        /// Pixels down.
        height: usize,
    },
    /// The image would be larger than [`MAX_PNG_SIDE`] across or down, or hold more
    /// than [`MAX_PNG_PIXELS`] pixels.
    #[error(
        "a {width} x {height} pixel image is larger than the {MAX_PNG_SIDE} pixels a side and {MAX_PNG_PIXELS} pixels in all written"
    )]
    TooLarge {
        /// Pixels across.
        width: u64,
        /// Pixels down.
        height: u64,
    },
    /// The encoder failed.
    #[error(transparent)]
    Encode(#[from] image::ImageError),
}

/// Largest PNG side written, pixels.
pub const MAX_PNG_SIDE: u64 = 32_768;
/// Most pixels in a PNG written (64 Mi: 192 MiB as RGB in memory).
pub const MAX_PNG_PIXELS: u64 = 1 << 26;

/// Refuses an image of `width x height` pixels beyond [`MAX_PNG_SIDE`] or
/// [`MAX_PNG_PIXELS`] (or a size that does not fit a `u64`).
fn check_png_size(width: Option<u64>, height: Option<u64>) -> Result<(u32, u32), PngError> {
    let (w, h) = (width.unwrap_or(u64::MAX), height.unwrap_or(u64::MAX));
    let fits = w <= MAX_PNG_SIDE && h <= MAX_PNG_SIDE && w.saturating_mul(h) <= MAX_PNG_PIXELS;
    match (u32::try_from(w), u32::try_from(h)) {
        (Ok(w32), Ok(h32)) if fits => Ok((w32, h32)),
        _ => Err(PngError::TooLarge {
            width: w,
            height: h,
        }),
    }
}

/// An RGBA image of `[width, height]` pixels, row-major, as PNG bytes.
/// Refused beyond [`MAX_PNG_SIDE`] or [`MAX_PNG_PIXELS`].
pub fn color_image_png(
    [width, height]: [usize; 2],
    pixels: impl Iterator<Item = [u8; 4]>,
) -> Result<Vec<u8>, PngError> {
    let (w, h) = check_png_size(u64::try_from(width).ok(), u64::try_from(height).ok())?;
    let count = w as usize * h as usize;
    // One pixel more than needed is taken, to tell too many from just enough.
    let raw: Vec<u8> = pixels.take(count + 1).flatten().collect();
    let image = image::RgbaImage::from_raw(w, h, raw).ok_or(PngError::Size { width, height })?;
    encode_png(image::DynamicImage::ImageRgba8(image))
}

/// PNG bytes of an image.
fn encode_png(image: image::DynamicImage) -> Result<Vec<u8>, PngError> {
    let mut bytes = Vec::new();
    image.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    Ok(bytes)
}

/// Every layer's and head's map of a snapshot as one PNG grid (layers down, heads
/// across), each cell `scale` pixels, 4 pixels between maps. When the grid would be
/// larger than [`MAX_PNG_SIDE`] or [`MAX_PNG_PIXELS`] the scale is lowered (to 1 at
/// least); a grid too large even then is refused ([`PngError::TooLarge`]).
pub fn attention_png(snapshot: &AttentionSnapshot, scale: u32) -> Result<Vec<u8>, PngError> {
    const GAP: u64 = 4;
    let (n, layers, heads) = (
        snapshot.n as u64,
        snapshot.layers as u64,
        snapshot.heads as u64,
    );
    let size = |scale: u64| {
        let side = n.checked_mul(scale)?;
        let extent = |count: u64| {
            count
                .checked_mul(side)?
                .checked_add(count.checked_add(1)?.checked_mul(GAP)?)
        };
        Some((extent(heads), extent(layers)))
    };
    // A larger scale never fits a side (so at most that many tries).
    let mut scale = u64::from(scale.max(1)).min(MAX_PNG_SIDE);
    let (width, height) = loop {
        let (w, h) = size(scale).unwrap_or((None, None));
        match check_png_size(w, h) {
            Ok(fits) => break fits,
            Err(e) if scale == 1 => return Err(e),
            Err(_) => scale -= 1,
        }
    };
    // Every value below fits a u32: the whole image does.
    let (n, layers, heads, scale, gap) = (
        n as u32,
        layers as u32,
        heads as u32,
        scale as u32,
        GAP as u32,
    );
    let side = n * scale;
    let mut image = image::RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    for layer in 0..layers {
        for head in 0..heads {
            let map = snapshot.map(layer as usize, head as usize);
            let (ox, oy) = (gap + head * (side + gap), gap + layer * (side + gap));
            for (i, t) in sqrt_scaled(map).enumerate() {
                let (q, k) = (i as u32 / n, i as u32 % n);
                let rgb = image::Rgb(colormap_rgb(t));
                for dy in 0..scale {
                    for dx in 0..scale {
                        image.put_pixel(ox + k * scale + dx, oy + q * scale + dy, rgb);
                    }
                }
            }
        }
    }
    encode_png(image::DynamicImage::ImageRgb8(image))
}
