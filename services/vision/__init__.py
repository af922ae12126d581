"""The vision service: face enrolment and recognition, distance and personal colour.

The engine layer lives here: :mod:`.images` turns uploaded bytes into RGB arrays,
:mod:`.engine` names the interface every face engine offers, :mod:`.dlib_engine` is the default
engine, :mod:`.quality` judges whether a detected face is good enough to enrol, and
:mod:`.matcher` finds the nearest enrolled face in memory. None of them loads a model at import.
"""
