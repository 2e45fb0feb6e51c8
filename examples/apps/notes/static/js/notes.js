/* notes: hide the flash message when clicked */
(function () {
  'use strict';
  var flash = document.getElementById('flash');
  if (flash) {
    flash.addEventListener('click', function () { flash.style.display = 'none'; });
  }
}());
