-- Pages read by OCR: the mean word confidence (0–100; NULL for a page not
-- read by OCR) and, as JSON, how it was read: the page image's size and
-- resolution, the skew corrected, and every word's character offsets into
-- pages.text, box on the page image and confidence, so a passage can later
-- be highlighted on the page image.
ALTER TABLE pages ADD COLUMN ocr_confidence REAL;
ALTER TABLE pages ADD COLUMN ocr TEXT;
