"""Simulated devices: processes that stand in for hardware on the real broker.

:mod:`devices.mirror` is a smart mirror (``mirrorhub mirror``); :mod:`devices.frames` is its
camera, played back from a folder of images; :mod:`devices.fleet` plays many mirrors from one
process and checks who their displays show (``mirrorhub fleet``).
"""
