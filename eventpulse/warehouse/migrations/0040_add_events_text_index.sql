-- Event search (dashboards/): a text index over the payload JSON of raw events, so a search by
-- words (`hasToken`, `hasAllTokens`) reads only the granules holding them. The tokenizer splits on
-- every non-alphanumeric ASCII character, which is how the dashboards split the search text.
-- MATERIALIZE builds the index for parts written before this migration (a background mutation).
ALTER TABLE events ADD INDEX IF NOT EXISTS events_data_text data TYPE text(tokenizer = 'splitByNonAlpha');
ALTER TABLE events MATERIALIZE INDEX events_data_text;
