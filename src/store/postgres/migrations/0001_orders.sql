-- 1: the orders table and its trigram index.
--
-- items_folded is written by the server, never by SQL: each item folded
-- with the shared search rule (Rust's str::to_lowercase), joined with '\n'.
-- Searches filter with LIKE on it (through the trigram index) and then
-- check each candidate with the rule in Rust, so the case folding is
-- exactly the embedded stores'.
--
-- id is COLLATE "C": ids sort by their bytes, as in the embedded stores
-- (keyset pages compare ids with >).
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE orders (
    id text COLLATE "C" PRIMARY KEY,
    items text[] NOT NULL,
    description text NOT NULL,
    price real NOT NULL,
    destination text NOT NULL,
    items_folded text NOT NULL
);

CREATE INDEX orders_items_folded_trgm ON orders USING gin (items_folded gin_trgm_ops);
