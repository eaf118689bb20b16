"""MONAI Deploy application: DICOM series -> FrequencyRefine-defended bundle inference -> DICOM SEG + detector report.

Needs the ``deploy`` extra (``pip install medsecure-transforms[deploy]``: MONAI Deploy App SDK, highdicom). Modules:
``app`` (the application, ``run_app`` and the ``python -m medsecure_transforms.deploy.app`` entry point),
``operators`` (the project's operators), ``segments`` (SNOMED-coded segment descriptions), ``components`` (the
default defense and detector, and their calibration). DICOM series I/O lives in
:mod:`medsecure_transforms.data.dicom_series` (pydicom only).
"""
