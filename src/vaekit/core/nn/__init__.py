"""Encoders and decoders: MLP for vectors, convolutional for images."""
from vaekit.core.nn.blocks import (
    ACTIVATIONS,
    DECODERS,
    ENCODERS,
    ConvDecoder,
    ConvEncoder,
    Decoder,
    Encoder,
    MLPDecoder,
    MLPEncoder,
    make_decoder,
    make_encoder,
)

__all__ = ["ACTIVATIONS", "ENCODERS", "DECODERS", "Encoder", "Decoder", "MLPEncoder", "MLPDecoder", "ConvEncoder",
           "ConvDecoder", "make_encoder", "make_decoder"]
