"""scfront.dictionary"""
