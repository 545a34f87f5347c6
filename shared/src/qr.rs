//! QR codes for connecting an authenticator app, as PNG (base64) and as SVG.
//!
//! Codes use error correction level M, the standard quiet zone of 4 modules and 8 pixels per module,
//! so that a phone camera reads them from a screen. An `otpauth` URI with a long issuer and account
//! fits in version 10 or less, which makes a PNG of at most (57 + 8) × 8 = 520 pixels square.

use std::io::Cursor;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use image::{ImageFormat, Luma};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// Size of one QR module in pixels (PNG) or SVG user units.
pub const MODULE_PIXELS: u32 = 8;

/// Error from encoding a QR code or its PNG image.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// The text does not fit in a QR code, typically because it is too long.
    #[error("QR code encoding failed: {0}")]
    Encode(#[from] qrcode::types::QrError),
    #[error("QR code PNG encoding failed: {0}")]
    Png(#[from] image::ImageError),
}

fn encode(text: &str) -> Result<QrCode, QrError> {
    Ok(QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)?)
}

/// Renders `text` as a QR code in a PNG image, returned as standard base64 with padding.
pub fn render_png_base64(text: &str) -> Result<String, QrError> {
    let image = encode(text)?
        .render::<Luma<u8>>()
        .quiet_zone(true)
        .module_dimensions(MODULE_PIXELS, MODULE_PIXELS)
        .build();

    let mut png = Vec::new();
    image.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)?;
    Ok(STANDARD.encode(png))
}

/// Renders `text` as a QR code in an SVG document with black modules on a white background.
pub fn render_svg(text: &str) -> Result<String, QrError> {
    let svg = encode(text)?
        .render::<svg::Color<'_>>()
        .quiet_zone(true)
        .module_dimensions(MODULE_PIXELS, MODULE_PIXELS)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::path::PathBuf;
    use std::process::Command;

    use super::*;

    const URI: &str = "otpauth://totp/%C5%BDlu%C5%A5ou%C4%8Dk%C3%BD%20k%C5%AF%C5%88:alice%40example.cz\
                       ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=%C5%BDlu%C5%A5ou%C4%8Dk%C3%BD%20k%C5%AF%C5%88\
                       &algorithm=SHA1&digits=6&period=30";

    fn decode_png(text: &str) -> Vec<u8> {
        STANDARD.decode(render_png_base64(text).unwrap()).unwrap()
    }

    /// Decodes the QR code in `path` with `zbarimg`, or returns `None` when it is not installed.
    ///
    /// With `TWOFA_REQUIRE_TOOLS=1` a missing `zbarimg` fails the test instead, so that CI cannot
    /// pass without running the check.
    fn zbarimg(path: &PathBuf) -> Option<String> {
        let output = match Command::new("zbarimg").arg("--raw").arg("-q").arg(path).output() {
            Ok(output) => output,
            Err(error) if error.kind() == ErrorKind::NotFound => {
                let is_required = std::env::var("TWOFA_REQUIRE_TOOLS").is_ok_and(|value| value == "1");
                assert!(
                    !is_required,
                    "zbarimg not found, but TWOFA_REQUIRE_TOOLS=1 requires it (apt-get install zbar-tools)"
                );
                eprintln!("skipping the QR decode check: zbarimg not found (apt-get install zbar-tools)");
                return None;
            }
            Err(error) => panic!("zbarimg failed to start: {error}"),
        };
        assert!(
            output.status.success(),
            "zbarimg found no QR code in {}: {} (to read an SVG it needs rsvg-convert, Debian librsvg2-bin)",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );

        let stdout = String::from_utf8(output.stdout).unwrap();
        Some(stdout.strip_suffix('\n').unwrap_or(&stdout).to_owned())
    }

    fn temporary_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("twofa-qr-{}-{name}", std::process::id()))
    }

    #[test]
    fn png_decodes_to_input_with_zbarimg() {
        for (name, text) in [("uri.png", URI), ("text.png", "Hello, world: 005924 & more")] {
            let path = temporary_path(name);
            std::fs::write(&path, decode_png(text)).unwrap();

            let decoded = zbarimg(&path);
            std::fs::remove_file(&path).unwrap();

            if let Some(decoded) = decoded {
                assert_eq!(decoded, text);
            }
        }
    }

    #[test]
    fn png_has_quiet_zone_and_large_modules() {
        let image = image::load_from_memory_with_format(&decode_png(URI), ImageFormat::Png)
            .unwrap()
            .to_luma8();
        let modules = encode(URI).unwrap().width() as u32;

        assert_eq!(image.width(), (modules + 8) * MODULE_PIXELS);
        assert_eq!(image.height(), image.width());

        let quiet = 4 * MODULE_PIXELS;
        for y in 0..image.height() {
            for x in 0..image.width() {
                let is_quiet_zone = x < quiet || y < quiet || x >= image.width() - quiet || y >= image.height() - quiet;
                if is_quiet_zone {
                    assert_eq!(image.get_pixel(x, y).0, [255], "pixel ({x}, {y}) of the quiet zone");
                }
            }
        }
        assert_eq!(image.get_pixel(quiet, quiet).0, [0], "finder pattern corner");
    }

    #[test]
    fn qr_uses_error_correction_level_m() {
        assert_eq!(encode(URI).unwrap().error_correction_level(), EcLevel::M);
    }

    #[test]
    fn svg_is_square_document_with_quiet_zone() {
        let svg = render_svg(URI).unwrap();
        let side = (encode(URI).unwrap().width() as u32 + 8) * MODULE_PIXELS;

        assert!(svg.contains("<svg"), "{svg}");
        assert!(svg.contains(&format!(r#"width="{side}" height="{side}""#)), "{svg}");
        assert!(svg.contains(r##"fill="#ffffff""##));
        assert!(svg.contains(r##"fill="#000000""##));
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn svg_decodes_to_input_with_zbarimg() {
        let path = temporary_path("uri.svg");
        std::fs::write(&path, render_svg(URI).unwrap()).unwrap();

        let decoded = zbarimg(&path);
        std::fs::remove_file(&path).unwrap();

        if let Some(decoded) = decoded {
            assert_eq!(decoded, URI);
        }
    }

    #[test]
    fn too_long_text_is_an_error() {
        let text = "A".repeat(5000);

        assert!(matches!(render_png_base64(&text), Err(QrError::Encode(_))));
        assert!(matches!(render_svg(&text), Err(QrError::Encode(_))));
    }
}
