"""Full-integer int8 TFLite export, checked against the Keras model before anything is written."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tensorflow.lite.tools import flatbuffer_utils

from detector.errors import DetectorError
from detector.model import Classifier, Quantization, file_sha256, make_interpreter

MIN_DECISION_AGREEMENT = 0.98


class ExportError(DetectorError):
    """The int8 model disagrees with the Keras model too often to be shipped."""


def convert_int8(model: keras.Model, representative: np.ndarray, per_channel_weights: bool = True) -> bytes:
    """Keras 3 -> SavedModel -> int8 TFLite, calibrated on `representative` feature matrices, without the
    tensor names and signature (about a tenth of the file; the runtime addresses tensors by index).
    `per_channel_weights=False`: one scale per convolution kernel instead of one per output channel (the
    converter keeps the dense head's), which saves 12 bytes a channel (a scale and a 64-bit zero point): a
    third of a small depthwise-separable network's file."""

    def samples() -> Iterator[list[np.ndarray]]:
        for matrix in representative:
            yield [matrix[None].astype(np.float32)]

    with tempfile.TemporaryDirectory() as folder:
        model.export(folder, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        converter._experimental_disable_per_channel = not per_channel_weights  # the converter's own switch
        converted = flatbuffer_utils.convert_bytearray_to_object(bytearray(converter.convert()))
    flatbuffer_utils.strip_strings(converted)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(converted))


def tflite_scores(tflite_path: Path, features: np.ndarray) -> tuple[np.ndarray, Quantization, Quantization]:
    """Run the int8 file directly (before it has a card) to compare it with Keras."""
    interpreter = make_interpreter(tflite_path)
    input_details = interpreter.get_input_details()[0]
    output_details = interpreter.get_output_details()[0]
    quant_in, quant_out = Quantization.from_details(input_details), Quantization.from_details(output_details)
    outputs = []
    for matrix in features:
        interpreter.set_tensor(input_details["index"], quant_in.quantize(matrix.reshape(input_details["shape"])))
        interpreter.invoke()
        outputs.append(quant_out.dequantize(interpreter.get_tensor(output_details["index"])[0]))
    return np.array(outputs), quant_in, quant_out


def export_model(model: keras.Model, representative: np.ndarray, check_features: np.ndarray,
                 positive_index: int, threshold: float, card: dict[str, Any], out_path: Path,
                 decision: str = "threshold", per_channel_weights: bool = True) -> dict[str, Any]:
    """Write `out_path` (.tflite) and its card, or raise ExportError if int8 decisions drift from Keras.

    `decision="threshold"`: the positive label's score against `threshold` (a two-label detector);
    `decision="argmax"`: the top label (a multi-class model; `positive_index` is then unused).
    `per_channel_weights`: see `convert_int8`; the same check applies either way.
    """
    tflite_bytes = convert_int8(model, representative, per_channel_weights)
    keras_all = model.predict(check_features, batch_size=256, verbose=0)
    with tempfile.TemporaryDirectory() as folder:
        candidate = Path(folder) / "candidate.tflite"
        candidate.write_bytes(tflite_bytes)
        int8_all, quant_in, quant_out = tflite_scores(candidate, check_features)
    if decision == "argmax":
        # agreement: Keras' top label is the int8 model's top label (or tied for it: int8 steps are 1/256)
        keras_top = keras_all.argmax(axis=1)
        int8_of_keras_top = int8_all[np.arange(len(int8_all)), keras_top]
        agreement = float(np.mean(int8_of_keras_top >= int8_all.max(axis=1)))
        keras_scores, int8_positive = keras_all, int8_all
        note = (f"int8 TFLite vs float Keras on {len(check_features):,} training windows: share where Keras' top "
                f"label is the int8 top label (ties at one int8 step count; strict argmax agreement "
                f"{np.mean(keras_top == int8_all.argmax(axis=1)):.4f}); calibrated on {len(representative):,} windows")
    else:
        keras_scores, int8_positive = keras_all[:, positive_index], int8_all[:, positive_index]
        agreement = float(np.mean((keras_scores >= threshold) == (int8_positive >= threshold)))
        note = f"int8 TFLite vs float Keras on {len(check_features):,} training windows, decisions at `threshold`"
    check = {
        "windows": len(check_features),
        "threshold": threshold,
        "decision": decision,
        "weight_scales": "per output channel" if per_channel_weights else "one per convolution kernel",
        "decision_agreement": round(agreement, 4),
        "max_abs_score_difference": round(float(np.max(np.abs(keras_scores - int8_positive))), 4),
        "mean_abs_score_difference": round(float(np.mean(np.abs(keras_scores - int8_positive))), 4),
        "note": note,
    }
    if agreement < MIN_DECISION_AGREEMENT:
        raise ExportError(f"int8 model agrees with Keras on only {agreement:.1%} of decisions "
                          f"(need {MIN_DECISION_AGREEMENT:.0%}); not written")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(tflite_bytes)
    full_card = {
        **card,
        "input": quant_in.to_dict(),
        "output": quant_out.to_dict(),
        "export_check": check,
        "tflite_bytes": len(tflite_bytes),
        "tflite_sha256": file_sha256(out_path),
    }
    out_path.with_suffix(".json").write_text(json.dumps(full_card, indent=2) + "\n")
    Classifier(out_path)  # the runtime accepts what was written, or this raises
    return full_card
