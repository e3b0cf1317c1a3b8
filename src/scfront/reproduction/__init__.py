"""scfront.reproduction"""
