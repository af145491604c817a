//! CPU time per frame over the recent frames (the GUI's frame measure, W4 in
//! docs/performance.md's reference workloads), shown in the status line.

use std::time::Duration;

/// Frames kept for the statistics.
const MAX_FRAMES: usize = 600;

/// Recent frames' CPU time, with the median and 95th percentile.
pub struct FrameStats {
    history: egui::util::History<f32>,
    frames: u64,
    since: std::time::Instant,
}

impl Default for FrameStats {
    fn default() -> Self {
        Self {
            history: egui::util::History::new(0..MAX_FRAMES, f32::INFINITY),
            frames: 0,
            since: std::time::Instant::now(),
        }
    }
}

impl FrameStats {
    /// Records one frame's CPU time (eframe's measure of the previous frame).
    pub fn on_frame(&mut self, now_secs: f64, cpu_secs: f32) {
        self.history.add(now_secs, cpu_secs);
        self.frames += 1;
    }

    /// Median and 95th percentile of the kept frames, in milliseconds.
    pub fn percentiles_ms(&self) -> Option<(f32, f32)> {
        let mut sorted: Vec<f32> = self.history.values().collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f32::total_cmp);
        let at = |q: f32| sorted[((sorted.len() - 1) as f32 * q).round() as usize] * 1000.0;
        Some((at(0.5), at(0.95)))
    }

    /// Frames kept, frames since launch and the time since launch.
    pub fn counts(&self) -> (usize, u64, Duration) {
        (self.history.len(), self.frames, self.since.elapsed())
    }
}

/// How often the window redraws while a run trains (trainer events arrive every step;
/// each one asks for a frame no sooner than this).
///
/// On a GPU a frame costs the CPU ~3 ms, so 150 ms keeps curves smooth. A software
/// renderer (Mesa's llvmpipe: no GPU, or Xvfb) rasterises every frame on the same cores
/// that train: measured on W4 (2 cores), 5.5 frames/s took ~38% of the CPU and the run
/// trained at 63% of its headless speed, so there the window redraws once a second
/// while training. Input (mouse, keys) still redraws at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redraw {
    /// A hardware adapter draws the window.
    Gpu,
    /// The window is drawn by a CPU adapter.
    Software,
}

impl Redraw {
    /// The mode for the adapter eframe draws with (`None`, no wgpu state: `Gpu`).
    pub fn for_renderer(state: Option<&eframe::egui_wgpu::RenderState>) -> Self {
        match state.map(|s| s.adapter.get_info().device_type) {
            Some(eframe::egui_wgpu::wgpu::DeviceType::Cpu) => Self::Software,
            _ => Self::Gpu,
        }
    }

    /// The least time between frames asked for by training events.
    pub fn while_training(self) -> Duration {
        match self {
            Self::Gpu => Duration::from_millis(150),
            Self::Software => Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_recent_frames() {
        let mut stats = FrameStats::default();
        assert_eq!(stats.percentiles_ms(), None);
        for i in 0..100 {
            stats.on_frame(f64::from(i) * 0.01, (i + 1) as f32 / 1000.0);
        }
        let (median, p95) = stats.percentiles_ms().expect("frames");
        assert!((median - 50.0).abs() <= 1.0, "{median}");
        assert!((p95 - 95.0).abs() <= 1.0, "{p95}");
        assert_eq!(stats.counts().0, 100);
    }
}
