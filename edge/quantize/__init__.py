"""``edge quantize``: post-training INT8 quantisation with an accuracy gate.

``sources`` samples calibration and evaluation frames, ``head`` finds the detection head to
keep in float, ``backends`` runs ONNX Runtime's static quantiser or NNCF, ``gate`` compares
the quantised model's decoded detections with the float model's, ``package`` writes the
model package the runners select from.
"""
