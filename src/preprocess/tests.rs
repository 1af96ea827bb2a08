use std::path::{Path, PathBuf};
use std::time::Instant;

use image::{GrayImage, ImageBuffer, ImageEncoder, ImageFormat, Luma, Rgb, RgbImage, RgbaImage};

use super::*;

fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    })
}

#[test]
fn resize_sizes_for_all_aspects() {
    for mode in [ResizeMode::ShorterSideCrop, ResizeMode::Stretch] {
        let p = Preprocessing {
            resize: mode,
            ..Preprocessing::caffe(224)
        };
        for (w, h) in [
            (640, 480),
            (480, 640),
            (300, 300),
            (3, 2),
            (2, 1000),
            (224, 224),
        ] {
            assert_eq!(
                p.resize(&gradient(w, h)).dimensions(),
                (224, 224),
                "{mode:?} {w}x{h}"
            );
        }
    }
}

#[test]
fn crop_box_follows_documented_rounding() {
    // 752*224/500 = 336.896 -> H = 337, top = (337-224)//2 = 56.
    let (x, y, w, h) = shorter_side_crop_box(500, 752, 224);
    assert_eq!(x, 0.0);
    assert!((y - 56.0 * 752.0 / 337.0).abs() < 1e-9);
    assert_eq!(w, 500.0);
    assert!((h - 224.0 * 752.0 / 337.0).abs() < 1e-9);
    // 3*2/2 = 3 exactly; 5*224/4 = 280 -> left = 28.
    let (x, _, w, _) = shorter_side_crop_box(5, 4, 224);
    assert!((x - 28.0 * 5.0 / 280.0).abs() < 1e-9);
    assert!((w - 224.0 * 5.0 / 280.0).abs() < 1e-9);
    // A half is rounded up: 3*3/2 = 4.5 -> 5.
    let (x, _, w, _) = shorter_side_crop_box(3, 2, 3);
    assert!((x - 3.0 / 5.0).abs() < 1e-9 && (w - 9.0 / 5.0).abs() < 1e-9);
}

#[test]
fn centre_crop_is_centred_and_stretch_is_not_cropped() {
    // Red left half, blue right half: the centre crop keeps the border in the middle.
    let img = RgbImage::from_fn(400, 200, |x, _| {
        if x < 200 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    let p = Preprocessing::caffe(100);
    let out = p.resize(&img);
    assert_eq!(out.get_pixel(10, 50), &Rgb([255, 0, 0]));
    assert_eq!(out.get_pixel(89, 50), &Rgb([0, 0, 255]));
    assert_eq!(out.get_pixel(48, 50), &Rgb([255, 0, 0]));
    assert_eq!(out.get_pixel(51, 50), &Rgb([0, 0, 255]));
    // Stretch keeps the whole width: a 3-column band at each end of the source survives.
    let img = RgbImage::from_fn(400, 200, |x, _| {
        if x < 8 {
            Rgb([0, 255, 0])
        } else {
            Rgb([9, 9, 9])
        }
    });
    let stretched = Preprocessing {
        resize: ResizeMode::Stretch,
        ..p
    }
    .resize(&img);
    assert_eq!(stretched.get_pixel(0, 10), &Rgb([0, 255, 0]));
    let uniform = Preprocessing::caffe(64).resize(&RgbImage::from_pixel(123, 77, Rgb([7, 8, 9])));
    assert!(uniform.pixels().all(|p| *p == Rgb([7, 8, 9])));
}

#[test]
fn chw_values_and_channel_order() {
    let img = RgbImage::from_vec(
        2,
        2,
        vec![10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120],
    )
    .unwrap();
    let mut out = vec![0f32; 12];
    let caffe = Preprocessing::caffe(2);
    caffe.write_chw(&img, &mut out);
    let b = [30.0, 60.0, 90.0, 120.0].map(|v: f32| v - 103.939);
    let g = [20.0, 50.0, 80.0, 110.0].map(|v: f32| v - 116.779);
    let r = [10.0, 40.0, 70.0, 100.0].map(|v: f32| v - 123.68);
    assert_eq!(&out[..4], &b);
    assert_eq!(&out[4..8], &g);
    assert_eq!(&out[8..], &r);

    let torch = Preprocessing::imagenet(2);
    torch.write_chw(&img, &mut out);
    let f = |v: f32, c: usize| ((v * (1.0 / 255.0)) - torch.mean[c]) / torch.std[c];
    assert_eq!(out[0], f(10.0, 0));
    assert_eq!(out[3], f(100.0, 0));
    assert_eq!(out[5], f(50.0, 1));
    assert_eq!(out[11], f(120.0, 2));
    assert_eq!(torch.chw_len(), 12);
}

#[test]
#[should_panic(expected = "must be 2x2")]
fn chw_rejects_wrong_size() {
    Preprocessing::caffe(2).write_chw(&gradient(3, 2), &mut [0.0; 12]);
}

#[test]
fn validation() {
    assert!(Preprocessing::caffe(224).validate().is_ok());
    assert!(Preprocessing::imagenet(224).validate().is_ok());
    let bad = [
        Preprocessing {
            size: 0,
            ..Preprocessing::caffe(1)
        },
        Preprocessing {
            std: [1.0, 0.0, 1.0],
            ..Preprocessing::caffe(224)
        },
        Preprocessing {
            mean: [f32::NAN, 0.0, 0.0],
            ..Preprocessing::caffe(224)
        },
        Preprocessing {
            scale: f32::INFINITY,
            ..Preprocessing::caffe(224)
        },
    ];
    for p in bad {
        let e = p.validate().unwrap_err();
        assert!(matches!(e, PreprocessError::InvalidPreprocessing(_)), "{e}");
    }
}

#[test]
fn descriptor_serde_names() {
    let text = r#"
        size = 224
        resize = "stretch"
        color_order = "bgr"
        scale = 1.0
        mean = [103.939, 116.779, 123.68]
        std = [1.0, 1.0, 1.0]
    "#;
    let p: Preprocessing = toml::from_str(text).unwrap();
    assert_eq!(
        p,
        Preprocessing {
            resize: ResizeMode::Stretch,
            ..Preprocessing::caffe(224)
        }
    );
    let json = serde_json::to_string(&Preprocessing::imagenet(224)).unwrap();
    assert!(
        json.contains(r#""resize":"shorter-side-crop""#) && json.contains(r#""color_order":"rgb""#)
    );
    let without_resize = text.replace(r#"resize = "stretch""#, "");
    let p: Preprocessing = toml::from_str(&without_resize).unwrap();
    assert_eq!(p.resize, ResizeMode::ShorterSideCrop);
}

// ---- decoding ----

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn encode(img: &image::DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, format).unwrap();
    buf.into_inner()
}

fn noisy(w: u32, h: u32) -> RgbImage {
    let mut state = 0x2545_f491_u32;
    RgbImage::from_fn(w, h, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    })
}

fn load(path: &Path) -> Result<RgbImage, PreprocessError> {
    load_rgb(path, &DecodeLimits::default())
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn decode_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let e = load(&d.join("missing.jpg")).unwrap_err();
    assert!(matches!(e, PreprocessError::Io { .. }), "{e}");

    let e = load(&write(d, "empty.jpg", b"")).unwrap_err();
    assert!(matches!(e, PreprocessError::Empty { .. }), "{e}");

    let e = load(&write(
        d,
        "text.jpg",
        b"this is not an image, just some text\n",
    ))
    .unwrap_err();
    assert!(matches!(e, PreprocessError::NotAnImage { .. }), "{e}");
    assert!(e.to_string().contains("text.jpg: not an image"), "{e}");

    let jpeg = encode(&noisy(64, 48).into(), ImageFormat::Jpeg);
    let e = load(&write(d, "truncated.jpg", &jpeg[..jpeg.len() * 2 / 3])).unwrap_err();
    assert!(matches!(e, PreprocessError::Corrupt { .. }), "{e}");

    let png = encode(&noisy(64, 48).into(), ImageFormat::Png);
    let e = load(&write(d, "truncated.png", &png[..png.len() / 2])).unwrap_err();
    assert!(matches!(e, PreprocessError::Corrupt { .. }), "{e}");

    let tiny = encode(&noisy(1, 1).into(), ImageFormat::Png);
    let e = load(&write(d, "tiny.png", &tiny)).unwrap_err();
    assert!(
        matches!(
            e,
            PreprocessError::TooSmall {
                width: 1,
                height: 1,
                ..
            }
        ),
        "{e}"
    );

    // A valid PNG header claiming 100000x100000 (IHDR starts at byte 8: length, type, data).
    let mut huge = png.clone();
    huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&huge[12..29]);
    huge[29..33].copy_from_slice(&crc.to_be_bytes());
    let path = write(d, "huge.png", &huge);
    let start = Instant::now();
    let e = load(&path).unwrap_err();
    assert!(matches!(e, PreprocessError::TooLarge { .. }), "{e}");
    assert!(
        start.elapsed().as_millis() < 500,
        "refused in {:?}",
        start.elapsed()
    );
    // Within max_side but over max_pixels.
    let limits = DecodeLimits {
        max_pixels: 1000,
        ..DecodeLimits::default()
    };
    let e = load_rgb(&write(d, "big.png", &png), &limits).unwrap_err();
    assert!(e.to_string().contains("64x48 is 0.0 megapixels"), "{e}");
}

#[test]
fn decode_conversions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let gray = GrayImage::from_fn(4, 3, |x, y| Luma([(x * 60 + y) as u8]));
    let img = load(&write(
        d,
        "gray.png",
        &encode(&gray.clone().into(), ImageFormat::Png),
    ))
    .unwrap();
    assert_eq!(img.dimensions(), (4, 3));
    assert_eq!(img.get_pixel(3, 2), &Rgb([182, 182, 182]));

    let rgba = RgbaImage::from_vec(
        3,
        2,
        vec![
            10, 20, 30, 255, /**/ 0, 0, 0, 0, /**/ 0, 0, 0, 128, //
            1, 2, 3, 255, /**/ 4, 5, 6, 255, /**/ 200, 100, 50, 51,
        ],
    )
    .unwrap();
    let img = load(&write(
        d,
        "rgba.png",
        &encode(&rgba.into(), ImageFormat::Png),
    ))
    .unwrap();
    assert_eq!(img.get_pixel(0, 0), &Rgb([10, 20, 30]));
    assert_eq!(img.get_pixel(1, 0), &Rgb([255, 255, 255]));
    assert_eq!(img.get_pixel(2, 0), &Rgb([127, 127, 127]));
    assert_eq!(img.get_pixel(2, 1), &Rgb([244, 224, 214]));

    let deep: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(3, 3, |x, y| {
        Rgb([(x * 20000) as u16, (y * 30000) as u16, 65535])
    });
    let img = load(&write(
        d,
        "deep.png",
        &encode(&deep.into(), ImageFormat::Png),
    ))
    .unwrap();
    assert_eq!(img.get_pixel(2, 1), &Rgb([156, 117, 255]));

    let gray_alpha: ImageBuffer<image::LumaA<u16>, Vec<u16>> =
        ImageBuffer::from_pixel(2, 2, image::LumaA([0, 0]));
    let img = load(&write(
        d,
        "ga16.png",
        &encode(&gray_alpha.into(), ImageFormat::Png),
    ))
    .unwrap();
    assert_eq!(img.get_pixel(1, 1), &Rgb([255, 255, 255]));

    // Content decides the format, and data after the JPEG's end (motion photos) is accepted.
    let mut jpeg = encode(&noisy(30, 20).into(), ImageFormat::Jpeg);
    jpeg.extend_from_slice(b"\0\0ftypmp42 trailing video data");
    let img = load(&write(d, "photo.png", &jpeg)).unwrap();
    assert_eq!(img.dimensions(), (30, 20));

    let bmp = encode(&noisy(5, 7).into(), ImageFormat::Bmp);
    assert_eq!(load(&write(d, "x.bmp", &bmp)).unwrap(), noisy(5, 7));
}

#[test]
fn decode_applies_exif_orientation() {
    // Big-endian TIFF header, one IFD entry: Orientation (0x0112), SHORT, 1, value 6 (rotate 90 CW).
    let exif = [
        b'M', b'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0,
    ];
    // Left column red, the rest white: after rotating 90 degrees clockwise it is the top row.
    let img = RgbImage::from_fn(40, 16, |x, _| {
        if x < 8 {
            Rgb([255, 0, 0])
        } else {
            Rgb([255; 3])
        }
    });
    let mut buf = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 95);
    enc.set_exif_metadata(exif.to_vec()).unwrap();
    enc.write_image(img.as_raw(), 40, 16, image::ExtendedColorType::Rgb8)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = load(&write(dir.path(), "rotated.jpg", &buf)).unwrap();
    assert_eq!(out.dimensions(), (16, 40));
    let top = out.get_pixel(8, 2);
    let bottom = out.get_pixel(8, 37);
    assert!(
        top[1] < 60 && bottom[1] > 200,
        "top {top:?} bottom {bottom:?}"
    );
}

#[test]
fn jpeg_marker_walk() {
    let jpeg = encode(&noisy(16, 16).into(), ImageFormat::Jpeg);
    assert!(decode::jpeg_is_complete(&jpeg));
    for cut in [3, 20, jpeg.len() / 2, jpeg.len() - 1] {
        assert!(!decode::jpeg_is_complete(&jpeg[..cut]), "cut at {cut}");
    }
}

#[test]
fn a_truncated_jpeg_with_an_end_marker_appended_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let jpeg = encode(&noisy(64, 48).into(), ImageFormat::Jpeg);
    let mut cut = jpeg[..jpeg.len() / 2].to_vec();
    cut.extend_from_slice(&[0xFF, 0xD9]);
    assert!(
        decode::jpeg_is_complete(&cut),
        "the marker walk sees an end"
    );
    let e = load(&write(dir.path(), "cut.jpg", &cut)).unwrap_err();
    assert!(matches!(e, PreprocessError::Corrupt { .. }), "{e}");
    // The whole file still decodes, to exactly what `image` makes of it.
    let whole = load(&write(dir.path(), "whole.jpg", &jpeg)).unwrap();
    let reference = image::load_from_memory(&jpeg).unwrap().into_rgb8();
    assert_eq!(whole, reference);
}

#[test]
fn a_file_larger_than_any_accepted_image_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let limits = DecodeLimits::default();
    let path = dir.path().join("x.jpg");
    // Sparse: no disk space, but reading it would allocate gigabytes.
    let file = std::fs::File::create(&path).unwrap();
    let size = limits.max_file_bytes() + 1;
    file.set_len(size).unwrap();
    drop(file);
    let e = read_image_file(&path, &limits).unwrap_err();
    assert!(matches!(e, PreprocessError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains(&format!("{size} bytes")), "{e}");
    let e = load(&path).unwrap_err();
    assert!(matches!(e, PreprocessError::TooLarge { .. }), "{e}");
    // A file just within the bound is read (and then refused for its content, not its size).
    std::fs::File::create(&path)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    assert_eq!(read_image_file(&path, &limits).unwrap().len(), 1 << 20);
}
