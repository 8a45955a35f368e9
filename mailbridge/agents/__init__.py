"""Agents working tickets by email: who may act (auth), what they ask (commands), and
mail they forward on a customer's behalf (forward). The pipeline applies the results."""
