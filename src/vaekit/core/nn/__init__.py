"""Encoders and decoders: MLP for vectors, convolutional for images."""
from vaekit.core.nn.blocks import (
    ConvDecoder,
    ConvEncoder,
    MLPDecoder,
    MLPEncoder,
    make_decoder,
    make_encoder,
)

__all__ = ["MLPEncoder", "MLPDecoder", "ConvEncoder", "ConvDecoder", "make_encoder", "make_decoder"]
