//! The colour scale of attention maps, shared by the window and the exported PNGs.

/// A perceptual dark-to-bright colour scale (viridis stops), `t` in `0..=1`.
pub fn colormap_rgb(t: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 6] = [
        [68.0, 1.0, 84.0],
        [65.0, 68.0, 135.0],
        [42.0, 120.0, 142.0],
        [34.0, 168.0, 132.0],
        [122.0, 209.0, 81.0],
        [253.0, 231.0, 37.0],
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f32;
    let c = |k: usize| (STOPS[i][k] + (STOPS[i + 1][k] - STOPS[i][k]) * f) as u8;
    [c(0), c(1), c(2)]
}

/// A map's weights relative to its largest, on a square-root scale so weak but real
/// attention stays visible (`0..=1`).
pub fn sqrt_scaled(map: &[f32]) -> impl Iterator<Item = f32> + '_ {
    let max = map.iter().copied().fold(0.0f32, f32::max).max(1e-12);
    map.iter().map(move |&w| (w / max).sqrt())
}

/// A diverging colour scale for differences, `t` in `-1..=1`: blue below zero, a dark
/// grey at zero, red above (so the sign reads at a glance on a dark background).
pub fn diverging_rgb(t: f32) -> [u8; 3] {
    let t = t.clamp(-1.0, 1.0);
    let zero = [40.0f32, 40.0, 40.0];
    let end = if t < 0.0 {
        [70.0f32, 150.0, 255.0]
    } else {
        [255.0f32, 90.0, 60.0]
    };
    let f = t.abs().sqrt();
    let c = |k: usize| (zero[k] + (end[k] - zero[k]) * f) as u8;
    [c(0), c(1), c(2)]
}
