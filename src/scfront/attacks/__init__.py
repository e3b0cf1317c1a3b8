"""scfront.attacks"""
