"""The data-quality audit: signals measured on the frames the decode pass already holds, flags with
named thresholds, perceptual hashes and near-duplicate pairs, and the HTML report (docs/quality.md)."""
