"""Lineage queries over artifact manifests: upstream trees and downstream impact."""
