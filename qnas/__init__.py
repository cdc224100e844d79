"""qnas: small quantized networks, searched and deployed (new modules; the older ones live in enas/, quantize/, ecomp_tf/)."""
