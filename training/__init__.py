"""Training the digit reader (not run in production): data, augmentation, trainers, page cells.

Runtime code (forms, ocr, output, review_ui, formstation) never imports this package
(tests/test_packaging.py keeps it so); the pieces both need live in runtime modules
(`ocr.digits`: the reader's normalisation; `simulate.digitsets`: the writer pools).
"""
