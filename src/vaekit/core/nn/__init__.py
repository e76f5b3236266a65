"""Encoders and decoders: MLP for vectors, convolutional and ResNet for images."""
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
from vaekit.core.nn.resnet import ResNetDecoder, ResNetEncoder

__all__ = ["ACTIVATIONS", "ENCODERS", "DECODERS", "Encoder", "Decoder", "MLPEncoder", "MLPDecoder", "ConvEncoder",
           "ConvDecoder", "ResNetEncoder", "ResNetDecoder", "make_encoder", "make_decoder"]
