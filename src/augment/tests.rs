use image::{imageops, Rgb, RgbImage};

use super::*;

fn recipe(s: &str) -> Recipe {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn pattern(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 7 % 256) as u8,
            (y * 11 % 256) as u8,
            ((x * y) % 251) as u8,
        ])
    })
}

fn max_diff(a: &RgbImage, b: &RgbImage) -> u8 {
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(p, q)| p.abs_diff(*q))
        .max()
        .unwrap_or(0)
}

fn params(angle: f32, scale: f32, crop: CropRect) -> AugmentParams {
    AugmentParams {
        angle,
        scale,
        crop,
        ..AugmentParams::IDENTITY
    }
}

#[test]
fn parse_defaults_and_display_round_trip() {
    let r = recipe("flip, rotate ,scale,crop");
    assert_eq!(
        r,
        Recipe {
            flip: true,
            vflip: false,
            rotate: Some(20.0),
            scale: Some([0.8, 1.2]),
            crop: Some(0.6)
        }
    );
    assert_eq!(r.to_string(), "flip,rotate=20,scale=0.8-1.2,crop=0.6");
    for s in [
        "none",
        "",
        "flip",
        "vflip,flip",
        "rotate=7.5,crop=0.35",
        "scale=1.1",
        "scale=0.5-2,crop=1",
    ] {
        let r = recipe(s);
        assert_eq!(recipe(&r.to_string()), r, "{s} -> {r}");
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Recipe>(&json).unwrap(), r);
    }
    assert!(recipe("none").is_none() && recipe(" ").is_none());
    assert_eq!(recipe("").to_string(), "none");
    assert_eq!(recipe("crop=0.8,flip").to_string(), "flip,crop=0.8");
}

#[test]
fn parse_errors_list_valid_ops() {
    for (s, what) in [
        ("blur", "unknown augmentation op `blur`"),
        ("flip,mirror=2", "unknown augmentation op `mirror=2`"),
        ("rotate=abc", "`abc` is not a number"),
        ("rotate=200", "[0, 180]"),
        ("scale=1.2-0.8", "MIN <= MAX"),
        ("scale=0-1", "0 < MIN"),
        ("crop=1.5", "(0, 1]"),
        ("crop=0", "(0, 1]"),
        ("flip=1", "takes no value"),
        ("rotate=nan", "not a number"),
        ("flip,flip", "conflicts"),
        ("none,flip", "conflicts"),
    ] {
        let e = s.parse::<Recipe>().unwrap_err().to_string();
        assert!(e.contains(what), "{s}: {e}");
        assert!(
            e.contains("valid ops: flip, vflip, rotate[=DEG], scale[=MIN-MAX], crop[=MIN], none"),
            "{e}"
        );
    }
}

#[test]
fn sampling_is_deterministic_and_copy_zero_is_identity() {
    let r = recipe("flip,vflip,rotate=30,scale=0.7-1.3,crop=0.5");
    assert_eq!(r.sample(1, "a/b.jpg", 0), AugmentParams::IDENTITY);
    assert!(r.sample(1, "a/b.jpg", 0).is_identity());
    let p = r.sample(1, "a/b.jpg", 3);
    assert_eq!(p, r.sample(1, "a/b.jpg", 3));
    assert_ne!(p, r.sample(1, "a/b.jpg", 4));
    assert_ne!(p, r.sample(2, "a/b.jpg", 3));
    assert_ne!(p, r.sample(1, "a/c.jpg", 3));
    // Pinned so a dependency or code change that alters the stream is noticed.
    let json = serde_json::to_string(&r.sample(42, "daisy/image_0001.jpg", 1)).unwrap();
    let pinned = r#"{"flip":false,"vflip":false,"angle":7.342679,"scale":1.1136268,"crop":{"x":0.1105249,"y":0.010555781,"w":0.8765794,"h":0.97367513}}"#;
    assert_eq!(json, pinned);
    assert_eq!(
        serde_json::from_str::<AugmentParams>(&json).unwrap(),
        r.sample(42, "daisy/image_0001.jpg", 1)
    );
    assert!(recipe("none").sample(1, "x", 5).is_identity());

    let img = pattern(50, 40);
    assert_eq!(
        p.apply(&img).as_raw(),
        r.sample(1, "a/b.jpg", 3).apply(&img).as_raw()
    );
}

#[test]
fn sampled_values_stay_in_range_and_ops_are_independent() {
    let r = recipe("flip,rotate=10,scale=0.9-1.1,crop=0.6");
    let only_rotate = recipe("rotate=10");
    let mut flips = 0;
    for copy in 1..400 {
        let p = r.sample(7, "k", copy);
        assert!(
            p.angle.abs() <= 10.0 && (0.9..=1.1).contains(&p.scale),
            "{p:?}"
        );
        let c = p.crop;
        let area = c.w * c.h;
        assert!((0.6 - 1e-6..=1.0 + 1e-6).contains(&area), "{c:?}");
        assert!(
            c.x >= 0.0 && c.y >= 0.0 && c.x + c.w <= 1.0 + 1e-6 && c.y + c.h <= 1.0 + 1e-6,
            "{c:?}"
        );
        assert!(!p.vflip);
        flips += usize::from(p.flip);
        assert_eq!(only_rotate.sample(7, "k", copy).angle, p.angle);
    }
    assert!((150..250).contains(&flips), "{flips}");
}

#[test]
fn flips_are_exact_mirrors() {
    let img = pattern(13, 9);
    let h = AugmentParams {
        flip: true,
        ..AugmentParams::IDENTITY
    }
    .apply(&img);
    let v = AugmentParams {
        vflip: true,
        ..AugmentParams::IDENTITY
    }
    .apply(&img);
    for (x, y, px) in img.enumerate_pixels() {
        assert_eq!(h.get_pixel(12 - x, y), px);
        assert_eq!(v.get_pixel(x, 8 - y), px);
    }
}

#[test]
fn identity_and_near_identity() {
    let img = pattern(64, 48);
    assert_eq!(AugmentParams::IDENTITY.apply(&img), img);
    // A full turn goes through the warp: no half-pixel shift, no rounding bias.
    let turned = params(360.0, 1.0, CropRect::FULL).apply(&img);
    assert!(max_diff(&turned, &img) <= 1, "{}", max_diff(&turned, &img));
    let barely = params(0.0, 1.000_001, CropRect::FULL).apply(&img);
    assert!(max_diff(&barely, &img) <= 1);
}

#[test]
fn rotate_90_matches_exact_rotation() {
    let img = pattern(32, 32);
    let ccw = params(90.0, 1.0, CropRect::FULL).apply(&img);
    assert!(max_diff(&ccw, &imageops::rotate270(&img)) <= 1);
    let cw = params(-90.0, 1.0, CropRect::FULL).apply(&img);
    assert!(max_diff(&cw, &imageops::rotate90(&img)) <= 1);
}

#[test]
fn crop_and_zoom_geometry() {
    // Bilinear reproduces a linear ramp exactly, so the mapping can be checked pixel by pixel.
    let img = RgbImage::from_fn(40, 40, |x, y| {
        Rgb([(4 * x + 20) as u8, (4 * y + 20) as u8, 0])
    });
    let crop = CropRect {
        x: 0.25,
        y: 0.5,
        w: 0.5,
        h: 0.25,
    };
    let out = params(0.0, 1.0, crop).apply(&img);
    for (x, y, px) in out.enumerate_pixels() {
        // Output centre x+0.5 comes from source 10 + (x+0.5)/2, i.e. pixel index 9.75 + x/2.
        let sx = 9.75 + x as f32 / 2.0;
        let sy = 19.625 + y as f32 / 4.0;
        let expect = [4.0 * sx + 20.0, 4.0 * sy + 20.0];
        assert!(
            (f32::from(px[0]) - expect[0]).abs() <= 1.0,
            "({x},{y}) {px:?} {expect:?}"
        );
        assert!(
            (f32::from(px[1]) - expect[1]).abs() <= 1.0,
            "({x},{y}) {px:?} {expect:?}"
        );
    }
    // Zoom-out by 1/2 puts the whole image in the centre quarter, filled around.
    let out = params(0.0, 0.5, CropRect::FULL).apply(&img);
    assert_eq!(out.get_pixel(2, 2), &Rgb(FILL));
    assert_eq!(out.get_pixel(37, 20), &Rgb(FILL));
    let centre = out.get_pixel(20, 20);
    assert!(
        centre[0].abs_diff(102) <= 2 && centre[1].abs_diff(102) <= 2,
        "{centre:?}"
    );
    // Zoom-in by 2 shows the centre half.
    let out = params(0.0, 2.0, CropRect::FULL).apply(&img);
    let corner = out.get_pixel(0, 0);
    assert!(corner[0].abs_diff(59) <= 1, "{corner:?}");
}

#[test]
fn apply_keeps_size() {
    let r = recipe("flip,vflip,rotate,scale=0.3-2,crop=0.2");
    for (w, h) in [(50, 70), (71, 33), (2, 2), (1, 1)] {
        let img = pattern(w, h);
        for copy in 0..8 {
            assert_eq!(r.sample(3, "x", copy).apply(&img).dimensions(), (w, h));
        }
    }
}

#[test]
fn preview_grid_layout() {
    let grid = preview_grid(&pattern(60, 30), &recipe("flip,rotate"), 1, 5, 64);
    // 6 tiles -> 3 columns x 2 rows of 64x32 cells, gap 2.
    assert_eq!(grid.dimensions(), (3 * 66 + 2, 2 * 34 + 2));
    // The first tile is the original (its top-left pixel is black), the gaps are white.
    assert_eq!(grid.get_pixel(1, 1), &Rgb([255; 3]));
    assert_eq!(grid.get_pixel(2, 2), &Rgb([0; 3]));
    assert_eq!(grid.get_pixel(66, 10), &Rgb([255; 3]));
}
