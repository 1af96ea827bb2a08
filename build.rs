//! Compiles `proto/onnx.proto` into Rust types with `protox` (pure Rust, so no
//! `protoc` binary is needed on the build machine) and `prost-build`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    println!("cargo:rerun-if-changed=build.rs");
    let fds = protox::compile(["onnx.proto"], ["proto"])?;
    prost_build::Config::new()
        // The proto comments hold indented ASCII diagrams that rustdoc would
        // run as doctests; proto/onnx.proto stays the reference instead.
        .disable_comments(["."])
        .compile_fds(fds)?;
    Ok(())
}
