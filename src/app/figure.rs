//! "Save pane as PNG" at a chosen scale: the pane is drawn again in an egui context
//! of its own, at `scale` pixels per point, and rendered off screen with the window's
//! wgpu device into a texture that is read back. So a 3x figure has three times the
//! screen's detail (text and lines drawn at that size), not an upscaled screenshot.

use std::iter;
use std::sync::Arc;
use std::sync::mpsc::channel;
use std::time::Duration;

use eframe::egui_wgpu::{self, ScreenDescriptor, wgpu};
use egui::{Rect, Ui, Vec2};

/// Scales offered for a pane PNG.
pub const SCALES: [f32; 4] = [1.0, 2.0, 3.0, 4.0];

/// Longest wait for the device to render and copy a figure.
const WAIT: Duration = Duration::from_secs(20);

/// An RGBA image, rows top to bottom.
pub struct Figure {
    pub size: [usize; 2],
    pub rgba: Vec<u8>,
}

/// Draws `draw` on a canvas of `size` points at `scale` pixels per point with `style`,
/// and reads the pixels back. Refuses, with the reason, a figure larger than the
/// device's largest texture.
pub fn render(
    state: &egui_wgpu::RenderState,
    style: Arc<egui::Style>,
    size: Vec2,
    scale: f32,
    draw: impl FnMut(&mut Ui),
) -> Result<Figure, String> {
    let (width, height) = figure_pixels(state, size, scale)?;
    let ctx = egui::Context::default();
    ctx.set_global_style(style);
    let mut renderer = egui_wgpu::Renderer::new(
        &state.device,
        wgpu::TextureFormat::Rgba8Unorm,
        egui_wgpu::RendererOptions::default(),
    );
    let output = settled_output(state, &ctx, &mut renderer, size, scale, draw)?;
    let (texture, encoder, user) = paint(state, &ctx, &mut renderer, output, [width, height]);
    read_back(state, &texture, encoder, user, [width, height])
}

/// The figure's size in pixels: `size` points at `scale`, refused when empty or
/// larger than the device's largest texture.
fn figure_pixels(
    state: &egui_wgpu::RenderState,
    size: Vec2,
    scale: f32,
) -> Result<(u32, u32), String> {
    let max = state.device.limits().max_texture_dimension_2d;
    let pixels = size * scale;
    let (width, height) = (pixels.x.round() as u32, pixels.y.round() as u32);
    if width == 0 || height == 0 {
        return Err("the pane has no area to draw".into());
    }
    if width > max || height > max {
        return Err(format!(
            "{width} x {height} pixels is larger than this GPU's largest image ({max} pixels a side): choose a smaller scale"
        ));
    }
    Ok((width, height))
}

/// Runs `draw` in `ctx` on a screen of `size` points at `scale` until it settles,
/// keeping the renderer's textures up to date; the last pass's output.
fn settled_output(
    state: &egui_wgpu::RenderState,
    ctx: &egui::Context,
    renderer: &mut egui_wgpu::Renderer,
    size: Vec2,
    scale: f32,
    mut draw: impl FnMut(&mut Ui),
) -> Result<egui::FullOutput, String> {
    let mut input = egui::RawInput {
        screen_rect: Some(Rect::from_min_size(egui::Pos2::ZERO, size)),
        ..Default::default()
    };
    input
        .viewports
        .entry(egui::ViewportId::ROOT)
        .or_default()
        .native_pixels_per_point = Some(scale);
    // Plots fit their bounds and text its layout over the first passes; the third
    // pass draws what a settled window shows.
    let mut output = None;
    for _ in 0..3 {
        let mut out = ctx.run_ui(input.clone(), |ui| {
            egui::CentralPanel::default().show(ui, |ui| draw(ui));
        });
        for (id, deltas) in &out.textures_delta.set {
            for delta in deltas {
                renderer.update_texture(&state.device, &state.queue, *id, delta);
            }
        }
        for id in &out.textures_delta.free {
            renderer.free_texture(id);
        }
        out.textures_delta.clear();
        output = Some(out);
    }
    output.ok_or_else(|| "nothing was drawn".into())
}

/// Paints `output` over the panel colour into a new texture of `[width, height]`
/// pixels; the texture, and the encoder and the renderer's command buffers still to
/// submit.
fn paint(
    state: &egui_wgpu::RenderState,
    ctx: &egui::Context,
    renderer: &mut egui_wgpu::Renderer,
    output: egui::FullOutput,
    [width, height]: [u32; 2],
) -> (
    wgpu::Texture,
    wgpu::CommandEncoder,
    Vec<wgpu::CommandBuffer>,
) {
    let screen = ScreenDescriptor {
        size_in_pixels: [width, height],
        pixels_per_point: ctx.pixels_per_point(),
    };
    let jobs = ctx.tessellate(output.shapes, screen.pixels_per_point);
    let texture = state.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("attnlab figure"),
        size: wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
    let mut encoder = state
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("attnlab figure"),
        });
    let user = renderer.update_buffers(&state.device, &state.queue, &mut encoder, &jobs, &screen);
    let fill = ctx.global_style().visuals.panel_fill;
    {
        let mut pass = encoder
            .begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("attnlab figure"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &view,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color {
                            r: f64::from(fill.r()) / 255.0,
                            g: f64::from(fill.g()) / 255.0,
                            b: f64::from(fill.b()) / 255.0,
                            a: 1.0,
                        }),
                        store: wgpu::StoreOp::Store,
                    },
                    depth_slice: None,
                })],
                ..Default::default()
            })
            .forget_lifetime();
        renderer.render(&mut pass, &jobs, &screen);
    }
    (texture, encoder, user)
}

/// Copies `texture` out through `encoder`, submits it after the renderer's `user`
/// command buffers, waits for the GPU and returns the pixels, rows top to bottom.
fn read_back(
    state: &egui_wgpu::RenderState,
    texture: &wgpu::Texture,
    mut encoder: wgpu::CommandEncoder,
    user: Vec<wgpu::CommandBuffer>,
    [width, height]: [u32; 2],
) -> Result<Figure, String> {
    // Copy into a buffer whose rows are padded as wgpu requires.
    let row = width as usize * 4;
    let align = wgpu::COPY_BYTES_PER_ROW_ALIGNMENT as usize;
    let padded = row.div_ceil(align) * align;
    let buffer = state.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("attnlab figure readback"),
        size: (padded * height as usize) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    encoder.copy_texture_to_buffer(
        texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &buffer,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(padded as u32),
                rows_per_image: None,
            },
        },
        wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
    );
    let submitted = state
        .queue
        .submit(user.into_iter().chain(iter::once(encoder.finish())));
    let slice = buffer.slice(..);
    let (tx, rx) = channel();
    slice.map_async(wgpu::MapMode::Read, move |r| drop(tx.send(r)));
    state
        .device
        .poll(wgpu::PollType::Wait {
            submission_index: Some(submitted),
            timeout: Some(WAIT),
        })
        .map_err(|e| format!("the GPU did not finish the figure: {e}"))?;
    rx.recv_timeout(WAIT)
        .map_err(|_| "the figure's pixels never arrived".to_string())?
        .map_err(|e| format!("reading the figure back failed: {e}"))?;
    let mapped = slice
        .get_mapped_range()
        .map_err(|e| format!("reading the figure back failed: {e}"))?;
    let mut rgba = Vec::with_capacity(row * height as usize);
    for line in mapped.chunks_exact(padded) {
        rgba.extend_from_slice(&line[..row]);
    }
    Ok(Figure {
        size: [width as usize, height as usize],
        rgba,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wgpu device without a window, as eframe would have one (llvmpipe where no GPU
    /// is present). `None` where the machine has no adapter at all.
    fn headless() -> Option<egui_wgpu::RenderState> {
        let setup = egui_wgpu::WgpuSetup::CreateNew(
            egui_wgpu::WgpuSetupCreateNew::without_display_handle(),
        );
        let instance = pollster::block_on(setup.new_instance());
        pollster::block_on(egui_wgpu::RenderState::create(
            &egui_wgpu::WgpuConfiguration {
                wgpu_setup: setup,
                ..Default::default()
            },
            &instance,
            None,
            egui_wgpu::RendererOptions::default(),
        ))
        .ok()
    }

    #[test]
    fn a_pane_drawn_at_twice_the_scale_has_twice_the_pixels_and_shows_its_text() {
        let Some(state) = headless() else {
            // CI installs a software adapter, so there the figure is always drawn.
            assert!(
                std::env::var_os("CI").is_none(),
                "no wgpu adapter: install mesa-vulkan-drivers"
            );
            eprintln!("skipped: no wgpu adapter on this machine");
            return;
        };
        let style = Arc::new(egui::Style::default());
        let size = Vec2::new(200.0, 100.0);
        let draw = |ui: &mut Ui| {
            ui.heading("attention");
        };
        let one = render(&state, style.clone(), size, 1.0, draw).expect("drawn at 1x");
        let two = render(&state, style.clone(), size, 2.0, draw).expect("drawn at 2x");
        assert_eq!(one.size, [200, 100]);
        assert_eq!(two.size, [400, 200]);
        assert_eq!(two.rgba.len(), 400 * 200 * 4);
        // The text is drawn: many pixels differ from the background, and about four
        // times as many at 2x.
        let background = &two.rgba[..4];
        let inked = |f: &Figure| {
            f.rgba
                .chunks_exact(4)
                .filter(|p| p.iter().zip(background).any(|(a, b)| a.abs_diff(*b) > 40))
                .count()
        };
        let (a, b) = (inked(&one), inked(&two));
        assert!(a > 50, "1x shows the text ({a} pixels)");
        assert!(b > 3 * a && b < 5 * a, "2x has ~4x the ink: {a} vs {b}");
        // A figure larger than the device allows is refused with a reason.
        let err = render(&state, style, Vec2::new(1.0e5, 10.0), 4.0, draw)
            .err()
            .expect("too large");
        assert!(err.contains("smaller scale"), "{err}");
    }
}
