# -*- coding: utf-8 -*-
{}
