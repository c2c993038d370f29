"""CelebA as a concept-space data source: a user's local copy (torchvision or csv layout), attribute concepts,
balanced training cells, a cached preprocessed image set. Entry points: `celeba.source.CelebASource` and
`celeba.config.check`."""
