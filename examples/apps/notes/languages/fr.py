# -*- coding: utf-8 -*-
{
'!langcode!': 'fr',
'!langname!': 'Français',
'A tiny example application': 'Une toute petite application d’exemple',
'A title is required': 'Un titre est obligatoire',
'Add note': 'Ajouter la note',
'API': 'API',
'Attachment': 'Pièce jointe',
'Back': 'Retour',
'Body': 'Texte',
'Created on': 'Créée le',
'No notes yet.': 'Pas encore de notes.',
'Note added': 'Note ajoutée',
'Notes': 'Notes',
'RSS': 'RSS',
'The form expired, please try again': 'Le formulaire a expiré, veuillez réessayer',
'Title': 'Titre',
}
